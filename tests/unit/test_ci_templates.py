"""ci/: the GitHub Actions workflow and the GitLab CI pipeline say what the README promises (setup
with scripts/setup.sh, a firmware x network matrix, the build cache kept, reports and JUnit kept).
Their validity against GitHub's and GitLab's own schemas is checked offline in
tests/integration/test_ci_templates_schema.py (check-jsonschema's vendored schemas)."""

from __future__ import annotations

import re

from ruamel.yaml import YAML


def load(repo, name):
    return YAML(typ="safe").load((repo / "ci" / name).read_text())


def commands(job):
    steps = job.get("steps") or []
    return " ".join(str(s.get("run", "")) for s in steps) + " ".join(job.get("script") or [])


def test_github_workflow_builds_once_then_boots_a_firmware_by_network_matrix(repo):
    wf = load(repo, "github-actions.yml")
    build, boot = wf["jobs"]["build"], wf["jobs"]["boot"]
    assert "./scripts/setup.sh" in commands(build) and "./scripts/setup.sh" in commands(boot)
    assert re.search(r"runbook run 01 .*--junit-xml reports/", commands(build))
    assert re.search(r"runbook run 02 .*--junit-xml reports/", commands(build))
    assert boot["needs"] == "build"
    matrix = boot["strategy"]["matrix"]
    assert matrix["firmware"] == ["uefi", "bios"] and set(matrix["network"]) == {"user", "testnet"}
    run03 = commands(boot)
    assert "-p firmware ${{ matrix.firmware }}" in run03 and "-p network ${{ matrix.network }}" in run03
    assert "--junit-xml reports/junit-03-${{ matrix.firmware }}-${{ matrix.network }}.xml" in run03
    # the test network needs root: the jobs run privileged as root
    assert all("--privileged" in j["container"]["options"] for j in (build, boot))


def test_github_workflow_caches_the_build_cache_and_always_uploads_reports(repo):
    wf = load(repo, "github-actions.yml")
    for job in wf["jobs"].values():
        cache = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/cache")]
        assert cache and cache[0]["with"]["path"] == "~/.cache/carbide-runbooks"
        uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")
                   and s["with"]["path"] == "reports/"]
        assert uploads and uploads[0]["if"] == "always()"  # a failing step still leaves its reports


def test_gitlab_pipeline_matrix_cache_and_junit_report(repo):
    ci = load(repo, "gitlab-ci.yml")
    assert ci["default"]["before_script"] == ["./scripts/setup.sh"]
    assert ci["variables"]["XDG_CACHE_HOME"] == "$CI_PROJECT_DIR/.cache"
    assert ".cache/carbide-runbooks/" in ci["default"]["cache"]["paths"]
    boot = ci["boot"]
    (row,) = boot["parallel"]["matrix"]
    assert row["FIRMWARE"] == ["uefi", "bios"] and set(row["NETWORK"]) == {"user", "testnet"}
    assert '-p firmware "$FIRMWARE" -p network "$NETWORK"' in commands(boot)
    build = ci["build"]
    assert build["artifacts"]["reports"]["junit"] == "reports/junit-*.xml"
    assert re.search(r"runbook run 01 .*--junit-xml reports/junit-01.xml", commands(build))
    assert re.search(r"runbook run 02 .*--junit-xml reports/junit-02.xml", commands(build))
    # a boot job reports its own JUnit only (the build's reports/ arrive with `needs`)
    own = "reports/boot-$FIRMWARE-$NETWORK/"
    assert boot["artifacts"]["reports"]["junit"] == own + "junit-03.xml"
    assert f'--report-dir "{own[:-1]}" --junit-xml "{own}junit-03.xml"' in commands(boot)
    assert build["artifacts"]["when"] == boot["artifacts"]["when"] == "always"
    assert "reports/" in build["artifacts"]["paths"] and boot["artifacts"]["paths"] == [own]
    assert "work/pxe/static/blobs/internal/x86_64/" in build["artifacts"]["paths"]
    assert boot["needs"] == ["build"]
