"""The one setting for where the series is published, and every link generated from it.

README badges, each notebook's Colab badge and each setup cell's clone URL come from
:data:`REPOSITORY` and :data:`BRANCH`. ``python -m helpers set-repository OWNER/NAME
[--branch B]`` rewrites this file and all of them; ``tests/test_repository.py`` fails when
any link disagrees. Until the series is published, :data:`REPOSITORY` holds a placeholder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

#: GitHub "owner/name" that Colab, Binder and ``git clone`` use.
REPOSITORY = "YOUR-GITHUB-USER/first-impressions-tutorial"
#: Branch the links open.
BRANCH = "main"

_NAME = r"[A-Za-z0-9_.-]+"
#: Colab, Binder and clone links to any GitHub repository (groups: repository, branch), each
#: with the format of its replacement.
LINK_PATTERNS = (
    (re.compile(rf"https://colab\.research\.google\.com/github/(?P<repository>{_NAME}/{_NAME})/blob/(?P<branch>[^/\s\"')]+)/"),
     "https://colab.research.google.com/github/{repository}/blob/{branch}/"),
    (re.compile(rf"https://mybinder\.org/v2/gh/(?P<repository>{_NAME}/{_NAME})/(?P<branch>[^?\s\"')\\]+)"),
     "https://mybinder.org/v2/gh/{repository}/{branch}"),
    (re.compile(rf"--branch (?P<branch>[^\s\\]+) https://github\.com/(?P<repository>{_NAME}/{_NAME})"),
     "--branch {branch} https://github.com/{repository}"),
)
#: GitHub's rules: an owner is 1-39 letters, digits and single inner hyphens; a repository
#: name is 1-100 letters, digits, '.', '-', '_' (not '.' or '..', not ending in '.git').
_OWNER_RE = re.compile(r"[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}")
_REPO_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
#: A branch the links can carry: git's ref rules (check-ref-format) narrowed to characters that
#: need no quoting in a URL or a shell line, and no '/' (a Colab URL could not tell it from the path).
_BRANCH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")
_BADGE_MARK = "colab-badge.svg"
_CLOSING_MARK = "**Done? Shut this notebook's kernel down**"
#: The last cell of every notebook (Markdown): Binder's 2 GB are shared by all open kernels.
CLOSING_NOTE = (
    f"{_CLOSING_MARK} before you open the next one (*Kernel > Shut Down Kernel*): a kernel keeps what its "
    "notebook loaded (with TensorFlow, about half a gigabyte), and on Binder all open kernels share 2 GB; past "
    "that, Binder restarts them. What the next notebook needs from this one is saved in `data/`."
)
#: The last cell of the series' last notebook: there is no next one to open.
LAST_CLOSING_NOTE = (
    f"{_CLOSING_MARK} (JupyterLab and Binder: *Kernel > Shut Down Kernel*). A kernel keeps all that its "
    "notebook loaded until it is shut down, and on Binder every open kernel shares one 2 GB allowance."
)
_SETUP_MARK = "# Setup"


def root() -> Path:
    """The repository folder (the parent of ``helpers/``)."""
    return Path(__file__).resolve().parent.parent


def check_repository(repository: str, branch: str) -> None:
    """Raise ValueError unless ``repository`` is a GitHub ``owner/name`` and ``branch`` a plain git branch name.

    Whole-string matches (``re.fullmatch``: a trailing newline is refused too), since both
    are written into Python source, Markdown links and every setup cell's ``!git clone`` line.
    """
    owner, _, name = repository.partition("/")
    if (not _OWNER_RE.fullmatch(owner) or not _REPO_NAME_RE.fullmatch(name) or name in (".", "..")
            or name.lower().endswith(".git")):
        raise ValueError(f"{ascii(repository)} is not a GitHub repository as OWNER/NAME (e.g. "
                         "octocat/first-impressions-tutorial): the owner is letters, digits and single hyphens, "
                         "the name letters, digits, '.', '-' and '_'; nothing was changed")
    if not _BRANCH_RE.fullmatch(branch) or ".." in branch or branch.endswith((".", ".lock")):
        raise ValueError(f"{ascii(branch)} is not a branch name this setting supports: letters, digits, '.', '-' "
                         "and '_' only, not starting with '-' or '.', no '..', not ending in '.' or '.lock' "
                         "(no '/', spaces or shell characters); nothing was changed")


def colab_url(notebook: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """Open ``notebooks/<notebook>`` of the repository in Colab."""
    return f"https://colab.research.google.com/github/{repository}/blob/{branch}/notebooks/{notebook}"


def binder_url(repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """Open the notebooks folder in JupyterLab on Binder."""
    return f"https://mybinder.org/v2/gh/{repository}/{branch}?urlpath=lab/tree/notebooks"


def notebook_badge(notebook: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """The HTML "Open in Colab" badge at the top of a notebook."""
    return (f'<a href="{colab_url(notebook, repository, branch)}" target="_parent"><img '
            f'src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>')


def readme_badges(repository: str = REPOSITORY, branch: str = BRANCH) -> list[str]:
    """The README's Binder and Colab badge lines (Markdown)."""
    return [f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(repository, branch)})",
            f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url('00_overview.ipynb', repository, branch)})"]


def setup_cell(repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """The setup cell, the same in every notebook (only the repository and branch vary)."""
    name = repository.split("/")[1]
    return f"""{_SETUP_MARK}. On Colab: fetch the repository (once) and repair its OpenCV; elsewhere (JupyterLab,
# Binder) only make `helpers` importable. `import helpers` keeps TensorFlow's start-up chatter out.
import sys
from pathlib import Path

if "google.colab" in sys.modules and not Path("../helpers").is_dir():
    if not Path("{name}").is_dir():
        !git clone -q --depth 1 --branch {branch} https://github.com/{repository}
    %cd -q {name}/notebooks
sys.path.insert(0, str(Path.cwd().parent))  # the repository root, one folder up from notebooks/
import helpers.setup

helpers.setup.run()  # on Colab: installs what is missing, prints one line about OpenCV

import cv2
import matplotlib.pyplot as plt
import numpy as np

%matplotlib inline
np.set_printoptions(precision=3, suppress=True)"""


def _is_setup_cell(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and "".join(cell.get("source", "")).startswith(_SETUP_MARK)


def _is_title_cell(cell: dict) -> bool:
    return cell.get("cell_type") == "markdown" and "".join(cell.get("source", "")).startswith("# ")


def closing_note(last: bool = False) -> str:
    """The closing note of a notebook; ``last``: of the series' last notebook."""
    return LAST_CLOSING_NOTE if last else CLOSING_NOTE


def rewrite_notebook(nb: dict, notebook: str, repository: str, branch: str, last: bool = False) -> dict:
    """Set a notebook's generated parts: badge (in the title cell), setup cell, closing note (last cell).

    ``last``: the series' last notebook, whose closing note has no next notebook to open.
    """
    badge = notebook_badge(notebook, repository, branch)
    cells = nb["cells"]
    title = next((c for c in cells if _is_title_cell(c)), None)
    if title is not None:
        lines = "".join(title["source"]).split("\n")
        at = next((i for i, line in enumerate(lines) if _BADGE_MARK in line), None)
        if at is None:
            lines[1:1] = ["", badge]
        else:
            lines[at] = badge
        title["source"] = "\n".join(lines)
    for cell in cells:
        if _is_setup_cell(cell):
            cell["source"] = setup_cell(repository, branch)
    closing = [c for c in cells if _is_closing_cell(c)]
    cells[:] = [c for c in cells if not _is_closing_cell(c)]
    if closing:
        closing[-1]["source"] = closing_note(last)
        cells.append(closing[-1])  # keeps its id: a second run changes nothing
    else:
        import nbformat

        cells.append(nbformat.v4.new_markdown_cell(closing_note(last)))
    return nb


def _is_closing_cell(cell: dict) -> bool:
    return cell.get("cell_type") == "markdown" and "".join(cell.get("source", "")).startswith(_CLOSING_MARK)


def rewrite_text(text: str, repository: str, branch: str) -> str:
    """Point every Colab, Binder and clone link in ``text`` at ``repository``/``branch``."""
    for pattern, template in LINK_PATTERNS:
        text = pattern.sub(template.format(repository=repository, branch=branch), text)
    return text


def linked_files(base: Path | None = None) -> list[Path]:
    """Files whose links come from the setting: the README and the numbered notebooks (in order)."""
    base = base or root()
    return [base / "README.md", *sorted((base / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def _is_last_notebook(path: Path, files: list[Path]) -> bool:
    return path.suffix == ".ipynb" and path == files[-1]


def set_repository(repository: str, branch: str = "main", base: Path | None = None) -> list[Path]:
    """Store the setting and rewrite every link and setup cell; return the files changed."""
    check_repository(repository, branch)
    base = base or root()
    changed = []
    setting = base / "helpers" / "repository.py"
    text = setting.read_text(encoding="utf-8")
    new = re.sub(r'^REPOSITORY = ".*"$', f'REPOSITORY = "{repository}"', text, count=1, flags=re.M)
    new = re.sub(r'^BRANCH = ".*"$', f'BRANCH = "{branch}"', new, count=1, flags=re.M)
    files = linked_files(base)
    for path in files:
        if not path.is_file():
            continue
        old = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            import nbformat

            nb = rewrite_notebook(nbformat.reads(old, as_version=4), path.name, repository, branch,
                                  last=_is_last_notebook(path, files))
            out = rewrite_text(nbformat.writes(nb) + "\n", repository, branch)
        else:
            out = rewrite_text(old, repository, branch)
        if out != old:
            path.write_text(out, encoding="utf-8")
            changed.append(path)
    if new != text:
        setting.write_text(new, encoding="utf-8")
        changed.append(setting)
    return changed


def _notebook_problems(rel: str, cells: list[dict], repository: str, branch: str, last: bool) -> list[str]:
    """A notebook's generated parts that disagree with the setting: its setup cell and closing note."""
    problems = []
    setups = [c for c in cells if _is_setup_cell(c)]
    if len(setups) != 1 or "".join(setups[0]["source"]) != setup_cell(repository, branch):
        problems.append(f"{rel}: {len(setups)} setup cells, expected one equal to repository.setup_cell()")
    if not cells or not _is_closing_cell(cells[-1]) or "".join(cells[-1]["source"]) != closing_note(last):
        problems.append(f"{rel}: last cell is not repository.{'LAST_' if last else ''}CLOSING_NOTE")
    return problems


def link_mismatches(base: Path | None = None, repository: str = REPOSITORY, branch: str = BRANCH) -> list[str]:
    """Every link, badge or setup cell that disagrees with the setting, as ``file: what`` lines."""
    base = base or root()
    problems = []
    files = linked_files(base)
    for path in files:
        rel = path.relative_to(base).as_posix()
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            cells = json.loads(text)["cells"]
            text = "\n".join("".join(c["source"]) for c in cells)
            problems += _notebook_problems(rel, cells, repository, branch, _is_last_notebook(path, files))
            wanted = [notebook_badge(path.name, repository, branch)]
        else:
            wanted = readme_badges(repository, branch)
        for pattern, _ in LINK_PATTERNS:
            for match in pattern.finditer(text):
                if (match.group("repository"), match.group("branch")) != (repository, branch):
                    problems.append(f"{rel}: {match.group(0)}")
        problems += [f"{rel}: missing {line}" for line in wanted if line not in text]
    return problems
