"""plan_tools: the programs a cargo-make plan calls, read from its tasks (no command runs).

The task texts below have the shapes of carbide's pxe/Makefile.toml (script and command tasks,
`/bin/bash -c`, `$(...)`, `if [ -n "${SA_ENABLEMENT}" ]`, here-documents, duckscript, a
variable-named elevation command), written for this test.
"""

from __future__ import annotations

from pathlib import Path

from runbook_lib.build import makefile as mk
from runbook_lib.build import plan_tools as pt
from runbook_lib.build.makefile import TaskDef

ENV = {"REPO_ROOT": "/src/carbide", "ELEVATE": "sudo"}


def words(uses):
    return [u.word for u in uses]


def by_word(uses):
    return {u.word: u for u in uses}


IPXE_BUILD = TaskDef("ipxe-build-efi", cwd="ipxe/upstream/src", script=['''
  LD_ARG=""
  if [ -n "${SA_ENABLEMENT}" ]; then
    LD_ARG="LD=/usr/bin/ld.bfd"
    docker run --rm -u $(id -u):$(id -g) \\
      -v ${REPO_ROOT}:/src builder-image \\
      make -j bin-arm64-efi/ipxe.efi
  else
    make -j bin-arm64-efi/ipxe.efi EMBED=${REPO_ROOT}/pxe/ipxe/local/embed.ipxe
  fi
  make -j ${LD_ARG} bin-arm64-efi/golan.efi
'''])


def test_a_branch_on_an_unset_variable_is_optional_and_names_its_condition():
    uses = pt.task_uses(IPXE_BUILD, ENV)
    docker = by_word(uses)["docker"]
    assert not docker.required and "SA_ENABLEMENT" in docker.condition
    makes = [u for u in uses if u.word == "make"]
    assert len(makes) == 2 and all(u.required for u in makes)  # the else branch is taken, and the last line
    assert makes[0].cwd == "ipxe/upstream/src"
    assert "id" not in words(uses)  # $(id -u) is a basic tool


def test_the_same_branch_is_required_when_the_variable_is_set():
    uses = pt.task_uses(IPXE_BUILD, dict(ENV, SA_ENABLEMENT="1"))
    assert by_word(uses)["docker"].required
    makes = [u for u in uses if u.word == "make"]
    # `make` of the else branch is now optional; the unconditional one stays required
    assert [u.required for u in makes] == [False, True]


def test_bash_dash_c_is_read_as_a_script_and_variables_expand():
    task = TaskDef("mkosi-build-loader", command="/bin/bash", args=[
        "-c", "export PATH=${PATH}:/sbin && ${REPO_ROOT}/pxe/mkosi/bin/mkosi --profile loader "
              "--output-dir=${MKOSI_BUILD_TMP} build"])
    (use,) = pt.task_uses(task, ENV)
    assert use.word == "/src/carbide/pxe/mkosi/bin/mkosi" and use.is_path and use.name == "mkosi"
    assert use.args[:2] == ("--profile", "loader")
    assert "--output-dir=${MKOSI_BUILD_TMP}" in use.args  # set at run time by duckscript: kept as written


def test_command_substitutions_pipes_and_or_lists_are_all_commands():
    task = TaskDef("ipxe-patch", cwd="${REPO_ROOT}/pxe/ipxe/upstream", script=['''
    PATCH="${REPO_ROOT}/pxe/ipxe/local/0003-watchdog.patch"
    OUT=$(patch -p1 --forward -i "${PATCH}") || echo "${OUT}" | grep "Skipping patch" -q || (echo "$OUT" && false)
    find main -type f | xargs -i sh -c 'printf "%s" {}' | zstd -q > list.zst
'''])
    uses = pt.task_uses(task, ENV)
    assert words(uses) == ["patch", "zstd"]
    assert uses[0].cwd == "/src/carbide/pxe/ipxe/upstream"


def test_here_document_bodies_are_data_not_commands():
    task = TaskDef("release-file", script=['''
  cat > Release <<EOF
Origin: Example
Label: jq is not run here
Architectures: amd64
EOF
  dpkg-scanpackages --arch amd64 -m pool > Packages
  cat <<< "here-string keeps the next line"
  gpg --armor --detach-sign Release
'''])
    assert words(pt.task_uses(task, ENV)) == ["dpkg-scanpackages", "gpg"]


def test_elevation_through_a_variable_and_sudo_are_programs_too():
    task = TaskDef("bfb-copy-efi", script=['''
  ${ELEVATE} apt-get -y install file
  sudo -E chown -R "$USER" .
  env LANG=C timeout 30 wget -Nnv https://example.invalid/x
'''])
    assert words(pt.task_uses(task, ENV)) == ["sudo", "apt-get", "sudo", "wget"]
    # ELEVATE unknown at plan time: nothing is guessed
    assert words(pt.task_uses(task, {})) == ["sudo", "wget"]


def test_duckscript_runs_inside_cargo_make():
    task = TaskDef("mkosi-generate-build-tmpdir", script_runner="@duckscript", script=[
        "tmp_name = exec --fail-on-error mktemp -d -p /tmp mkosi.output-XXXXXX\n"
        "set_env MKOSI_BUILD_TMP ${tmp_name}\n"])
    assert pt.task_uses(task, ENV) == []


def test_keywords_loops_and_assignments_are_not_programs():
    task = TaskDef("loop", script=['''
set -e
for f in a b c; do
  if test -f "$f"; then rsync -a "$f" out/; fi
done
case "$X" in a) true ;; esac
while read -r line; do jq -r . "$line"; done < files
'''])
    assert words(pt.task_uses(task, ENV)) == ["rsync", "jq"]


def test_plan_conditions_make_uses_optional_with_the_condition(tmp_path: Path):
    (tmp_path / "Makefile.toml").write_text('''
[tasks.all]
dependencies = ["stage", "ci-only", "build"]

[tasks.stage]
condition = { env_not_set = ["SA_ENABLEMENT"] }
command = "rsync"
args = ["-a", "nvinit/", "out/"]

[tasks.ci-only]
condition = { env_set = ["CI_JOB_ID"] }
command = "docker"
args = ["build", "-t", "x", "."]

[tasks.build]
script = "make -C src all"
''')
    mf = mk.load(tmp_path)
    env = {"REPO_ROOT": str(tmp_path)}
    uses = by_word(pt.tool_uses(mf, mk.resolve(mf, "all", env=env), env))
    assert uses["rsync"].required                       # condition holds now: needed
    assert not uses["docker"].required and "CI_JOB_ID" in uses["docker"].condition
    assert "false now" in uses["docker"].condition
    assert uses["make"].required
    env_ci = dict(env, CI_JOB_ID="7", SA_ENABLEMENT="1")
    uses = by_word(pt.tool_uses(mf, mk.resolve(mf, "all", env=env_ci), env_ci))
    assert uses["docker"].required and not uses["rsync"].required


def test_a_task_added_upstream_is_read_without_a_code_change(tmp_path: Path):
    (tmp_path / "Makefile.toml").write_text('''
[tasks.all]
dependencies = ["new-signing-step"]

[tasks.new-signing-step]
script = "sbsign --key db.key --cert db.crt --output signed.efi ipxe.efi"
''')
    mf = mk.load(tmp_path)
    (need,) = pt.group(pt.tool_uses(mf, mk.resolve(mf, "all", env={}), {}))
    assert need.word == "sbsign" and need.tasks == ["new-signing-step"] and need.required


def test_grouping_keeps_a_program_required_when_any_use_is():
    uses = pt.task_uses(IPXE_BUILD, dict(ENV, SA_ENABLEMENT="1"))
    make = next(n for n in pt.group(uses) if n.word == "make")
    assert make.required and make.condition == ""
