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
