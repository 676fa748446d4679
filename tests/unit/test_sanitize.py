from runbook_lib.report.render import excerpt_html
from runbook_lib.report.sanitize import clean_text, redact


def test_ansi_control_and_invalid_utf8_removed():
    raw = b"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[0m>>Start PXE\r\n\x00\x07ok \xff\xfe end"
    text = clean_text(raw)
    assert text == ">>Start PXE\nok \ufffd\ufffd end"


def test_redact_known_values_and_key_value_pairs():
    text = "root_password=hunter22 token: abc.def Authorization: Bearer XyZ123 http://u:pw@host/x carbide"
    out = redact(text, ["carbide"])
    assert "hunter22" not in out and "abc.def" not in out and "XyZ123" not in out
    assert "pw@" not in out and "carbide" not in out


def test_excerpt_is_escaped_and_bounded():
    html_out = excerpt_html(["<script>alert(1)</script>"] + [f"l{i}" for i in range(100)], max_lines=10)
    assert "<script>" not in html_out and "&lt;script&gt;" in html_out
    assert "l50" not in html_out and "…" in html_out


def test_redact_secret_command_line_flags():
    assert redact("build --root-password hunter2 --force") == "build --root-password *** --force"
    assert redact("x --root-password='a b' y") == "x --root-password=*** y"
    assert redact("x --api-token abc") == "x --api-token ***"


# --- secret shapes the detectors must catch (issue 13, defect 15) ---

OPENSSH_KEY = """writing host key
-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBXk3pLmQ7rT2vW9zB1nCxY4hD8fJ6sK0aE5uI3oP7qRwAAAJgPlantedKey
-----END OPENSSH PRIVATE KEY-----
done
"""


def test_redact_curl_user_password():
    out = redact("+ curl -fsSL -u admin:S3cretPass https://artifactory.example.com/x")
    assert "S3cretPass" not in out and "-u admin:***" in out and "https://artifactory.example.com/x" in out


def test_redact_key_value_with_spaces_and_a_suffix():
    out = redact("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert out == "aws_secret_access_key = ***"


def test_redact_bare_tokens_from_detect_secrets():
    for token in ("glpat-Xy7kP2mQ9rT4vW8zB1nC", "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngXyZ12345ab",
                  "AKIAQ3EGRTSXKZ2LWJ7M"):
        out = redact(f"cloning with {token} now")
        assert out == "cloning with *** now", (token, out)


def test_redact_a_whole_jwt_not_just_its_header():
    jwt = ("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJtYWNoaW5lIjoiNTI6NTQ6MDA6MTI6MzQ6NTYifQ."
           "c2lnbmF0dXJlLW9mLXRoZS1tYWNoaW5lLWlk")
    assert redact(f"agent: identity {jwt} ok") == "agent: identity *** ok"


def test_redact_a_private_key_block_whole():
    out = redact(OPENSSH_KEY)
    assert out == ("writing host key\n-----BEGIN OPENSSH PRIVATE KEY-----\n***\n"
                   "-----END OPENSSH PRIVATE KEY-----\ndone\n")


def test_redact_a_private_key_block_cut_at_either_end():
    head = OPENSSH_KEY.split("-----END")[0]
    assert "b3BlbnNz" not in redact(head) and "PlantedKey" not in redact(head)
    tail = "… cut …\n" + OPENSSH_KEY.split("-----\n", 1)[1]
    out = redact(tail)
    assert "b3BlbnNz" not in out and "PlantedKey" not in out and out.endswith("KEY-----\ndone\n")


def test_redact_keeps_ordinary_build_and_console_lines():
    from pathlib import Path

    lines = [ln for ln in (Path(__file__).parent.parent / "fixtures" / "secrets" / "ordinary.txt")
             .read_text().splitlines() if ln and not ln.startswith("#")]
    for line in lines:
        assert redact(line) == line


def test_redact_code_keeps_assignments_runnable_but_drops_tokens():
    src = 'root_password = "carbide"  # redacted in reports\nurl = "https://u:Pa55w0rd-URL@h/x"\n'
    out = redact(src + 'tok = "glpat-Xy7kP2mQ9rT4vW8zB1nC"\n', code=True)
    assert out == src.replace("Pa55w0rd-URL", "***") + 'tok = "***"\n'
    compile(out, "cell", "exec")
