"""Input keys: what changes a task's key, and what must not leak into it."""

from __future__ import annotations

import os
from pathlib import Path

from runbook_lib.sandbox import builder, inputs
from runbook_lib.sandbox.tasks import IMAGE_TASK, IPXE_TASK


def _tree(tmp: Path) -> Path:
    (tmp / "t" / "sub").mkdir(parents=True)
    (tmp / "t" / "a.conf").write_text("x=1\n")
    (tmp / "t" / "sub" / "script").write_text("#!/bin/sh\n")
    return tmp / "t"


def test_tree_digest_tracks_content_names_and_exec_bit(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    d0 = inputs.tree_digest(root)
    assert d0 == inputs.tree_digest(root)
    (root / "a.conf").write_text("x=2\n")
    d1 = inputs.tree_digest(root)
    assert d1 != d0
    os.chmod(root / "sub" / "script", 0o755)
    d2 = inputs.tree_digest(root)
    assert d2 != d1
    (root / "sub" / "script").rename(root / "sub" / "script2")
    assert inputs.tree_digest(root) != d2


def test_input_key_is_order_independent_and_task_specific() -> None:
    a = inputs.input_key("t", {"x": 1, "y": [1, 2]})
    assert a == inputs.input_key("t", {"y": [1, 2], "x": 1})
    assert a != inputs.input_key("u", {"x": 1, "y": [1, 2]})
    assert a != inputs.input_key("t", {"x": 2, "y": [1, 2]})


def test_secret_digest_hides_and_distinguishes() -> None:
    d = inputs.secret_digest("carbide")
    assert "carbide" not in d and len(d) == 64
    assert d == inputs.secret_digest("carbide")
    assert d != inputs.secret_digest("carbide2")
    # Stable across runs and machines (the cache key of an unchanged image must not move).
    assert d == "d3887b437496d0f82082bf4bff3d49a491cf701c63b63095afcf5e25ff92d294"
    shown = inputs.describe_parts({"root_password": d, "mirror": "m"}, ["root_password"])
    assert shown == {"root_password": "***", "mirror": "m"}


def test_image_key_changes_with_password_and_cmdline() -> None:
    base = builder.BuildOptions()
    k = inputs.input_key(IMAGE_TASK, builder.task_inputs(IMAGE_TASK, base, "http://m/debian"))
    other_pw = builder.BuildOptions(root_password="s3cret")
    k_pw = inputs.input_key(IMAGE_TASK, builder.task_inputs(IMAGE_TASK, other_pw, "http://m/debian"))
    other_cmd = builder.BuildOptions(cmdline="console=ttyS0,115200 quiet")
    k_cmd = inputs.input_key(IMAGE_TASK, builder.task_inputs(IMAGE_TASK, other_cmd, "http://m/debian"))
    k_mirror = inputs.input_key(IMAGE_TASK, builder.task_inputs(IMAGE_TASK, base, "http://n/debian"))
    assert len({k, k_pw, k_cmd, k_mirror}) == 4
    parts = builder.task_inputs(IMAGE_TASK, other_pw, "http://m/debian")
    assert "s3cret" not in repr(parts)
    assert set(parts["tools"]) == {"mkosi", "objcopy", "debootstrap"}


def test_ipxe_key_changes_with_port_not_with_password() -> None:
    k = inputs.input_key(IPXE_TASK, builder.task_inputs(IPXE_TASK, builder.BuildOptions(), "m"))
    k_port = inputs.input_key(IPXE_TASK, builder.task_inputs(IPXE_TASK, builder.BuildOptions(port=18080), "m"))
    k_pw = inputs.input_key(IPXE_TASK, builder.task_inputs(
        IPXE_TASK, builder.BuildOptions(root_password="x"), "m"))
    assert k != k_port
    assert k == k_pw


def test_secret_digest_is_cheap() -> None:
    """A cache key needs no key stretching: 100 digests take well under a second."""
    import time

    t0 = time.perf_counter()
    for i in range(100):
        inputs.secret_digest(f"pw-{i}")
    assert time.perf_counter() - t0 < 0.5
