"""The README's example runs as written (on the embedded digits when offline)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    # Keep the example offline and the test quick; everything else runs as written.
    monkeypatch.delenv("SGDCORE_DATA", raising=False)
    code = blocks[0].replace('mnist("all")', 'mnist("all", download=False)')
    code = code.replace("steps=500", "steps=20")
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    df = namespace["df"]
    assert len(df) == 3 * 2 and not df["diverged"].any()
    assert namespace["G"].shape == (128, 636010)
    assert namespace["noise"].trace_cov > 0


def test_readme_quick_start_has_exactly_two_commands():
    text = README.read_text()
    block = re.search(r"## Quick start\n\n```bash\n(.*?)```", text, flags=re.S)
    assert block is not None
    commands = [ln for ln in block.group(1).splitlines() if ln.strip()]
    assert len(commands) == 2
    assert "pip install -e ." in commands[0] and 'pip install -e ".[test]"' in commands[1]
    assert "pytest" in commands[1]


@pytest.mark.parametrize("path", ["sgdcore/grads.py", "sgdcore/training.py", "sgdcore/sweep"])
def test_file_map_names_real_files(path):
    assert (README.parent / path).exists()
    assert f"`{path}" in README.read_text()


def test_readme_sweep_commands_and_load_example_run(tmp_path, monkeypatch, capsys):
    from sgdcore import cli

    text = README.read_text()
    assert "docs/SPEC.md" in text and (README.parent / "docs" / "SPEC.md").is_file()
    block = re.search(r"## Sweeps and their results.*?```bash\n(.*?)```", text, flags=re.S)
    commands = [ln.split("#")[0].split() for ln in block.group(1).splitlines() if ln.strip()]
    assert [c[1] for c in commands] == ["sweep", "show", "show"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "sweep.toml").write_text(
        (README.parent / "examples" / "sweep.toml").read_text().replace("steps = 200", "steps = 20")
    )
    for argv in commands:
        assert cli.main(argv[1:]) == 0, argv
    assert (tmp_path / "example.csv").is_file()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[1]
    assert "sweep.load" in code
    exec(compile(code, str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert "mean" in printed and "std" in printed


def test_readme_asv_line_sets_up_the_machine_first_and_says_how_long():
    (line,) = [ln for ln in README.read_text().splitlines() if "asv run" in ln]
    assert line.index("asv machine --yes") < line.index("asv run --python=same --quick")
    assert "min" in line


def test_readme_states_the_measured_time_of_the_quick_reproduction():
    text = " ".join(README.read_text().split())
    sentence = text.split("`sgdcore reproduce --quick`")[1].split(".")[0]
    assert "a few minutes" not in sentence
    assert re.search(r"took \d+ s on 2 idle cores", sentence)
