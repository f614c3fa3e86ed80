"""The environment files agree with each other and the README's set-up commands exist."""
from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from starmind_lib.provenance import REPO_ROOT


def requirements(lines) -> dict[str, Requirement]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):      # -e ., --index-url ...
            continue
        req = Requirement(line)
        out[canonicalize_name(req.name)] = req
    return out


def pyproject_requirements() -> dict[str, Requirement]:
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return requirements(data["project"]["dependencies"])


def conda_pip_requirements() -> dict[str, Requirement]:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml needs one `pip:` list"
    return requirements(pip[0]["pip"])


def lock_versions() -> dict[str, str]:
    reqs = requirements((REPO_ROOT / "requirements.lock").read_text().splitlines())
    return {name: next(iter(r.specifier)).version for name, r in reqs.items()}


def test_pyproject_and_environment_list_the_same_packages_and_constraints():
    py, conda = pyproject_requirements(), conda_pip_requirements()
    assert set(py) == set(conda), (f"only in pyproject: {sorted(set(py) - set(conda))}; "
                                   f"only in environment.yml: {sorted(set(conda) - set(py))}")
    differ = {n: (str(py[n]), str(conda[n])) for n in py
              if py[n].specifier != conda[n].specifier or py[n].extras != conda[n].extras}
    assert not differ, f"version constraints or extras differ: {differ}"


def test_torch_is_pinned_to_one_version_everywhere():
    torch_py, torch_conda = pyproject_requirements()["torch"], conda_pip_requirements()["torch"]
    pins = [s for s in torch_py.specifier if s.operator == "=="]
    assert len(pins) == 1, f"pyproject must pin torch with ==, has {torch_py}"
    assert torch_conda.specifier == torch_py.specifier
    locked = lock_versions()["torch"].split("+")[0]     # 2.13.0+cpu is the CPU wheel of 2.13.0
    assert locked == pins[0].version, f"requirements.lock has torch {locked}, pyproject {pins[0].version}"


def test_every_dependency_is_locked():
    locked = lock_versions()
    missing = sorted(set(pyproject_requirements()) - set(locked))
    assert not missing, f"in pyproject.toml but not in requirements.lock: {missing}"


def test_readme_gives_the_two_setup_commands_and_make_has_them():
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", readme, re.S))
    for cmd in ("make book", "make test"):
        assert re.search(rf"^\s*{cmd}\s*$", blocks, re.M), f"README has no code block line `{cmd}`"
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in ("book", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no `{target}` target"
