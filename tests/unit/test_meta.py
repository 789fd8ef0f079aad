from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from packaging.metadata import Metadata as Parsed

from wheelyard.build.meta import (
    Metadata,
    Requirement,
    describe,
    render_console_module,
    render_entry_points,
    render_wheel_file,
)
from wheelyard.profile.families import Family


def test_metadata_is_valid_core_metadata() -> None:
    family = Family(name="gfx120X-all", targets=("gfx1200", "gfx1201"))
    text = Metadata(
        name="rocm",
        version="7.10.0rc1",
        summary="ROCm SDK",
        description=describe("ROCm SDK", "7.10.0rc1", family, "pip install rocm"),
        requires_python=">=3.9",
        license="MIT",
        homepage="https://example.invalid/rocm",
        requires=(
            Requirement(name="rocm-sdk-core", version="7.10.0rc1"),
            Requirement(
                name="rocm-sdk-libraries-gfx120X-all", version="7.10.0rc1", extra="libraries"
            ),
        ),
    ).render()
    parsed = Parsed.from_email(text, validate=True)
    assert str(parsed.version) == "7.10.0rc1"
    assert [str(r) for r in parsed.requires_dist or []] == [
        "rocm-sdk-core==7.10.0rc1",
        'rocm-sdk-libraries-gfx120X-all==7.10.0rc1; extra == "libraries"',
    ]
    assert parsed.provides_extra == ["libraries"]
    assert "gfx1200, gfx1201" in (parsed.description or "")


def test_wheel_file_is_not_purelib() -> None:
    text = render_wheel_file("py3-none-manylinux_2_28_x86_64").decode()
    assert "Root-Is-Purelib: false\n" in text
    assert "Tag: py3-none-manylinux_2_28_x86_64\n" in text


def test_entry_points_sorted() -> None:
    text = render_entry_points({"b": "m:b", "a": "m:a"}).decode()
    assert text == "[console_scripts]\na = m:a\nb = m:b\n"


def test_console_module_execs_with_the_script_name(tmp_path: Path) -> None:
    package = tmp_path / "_pkg"
    (package / "bin").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    source = tmp_path / "real.c"
    source.write_text(
        "#include <stdio.h>\nint main(int c, char **v) {\n"
        '  printf("argv0=%s args=%s %s\\n", v[0], v[1], v[2]); return 0; }\n'
    )
    subprocess.run(
        ["gcc", "-o", str(package / "bin" / "real"), str(source)], check=True, timeout=60
    )
    (package / "_console.py").write_bytes(render_console_module("pkg", {"alias": "bin/real"}))
    code = "import sys; sys.argv[0] = '/venv/bin/alias'; import _pkg._console as c; c.main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "one", "two"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.strip() == "argv0=alias args=one two"
    unknown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.argv[0] = 'other'; import _pkg._console as c; c.main()",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert unknown.returncode == 1
    assert "not a console script of pkg" in unknown.stderr
