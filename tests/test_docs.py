"""The README's promises that code can check: the test command, the model table, the API, and
where each kind of user finds what they need (docs/hosts.md holds the host details)."""

from __future__ import annotations

import re
from pathlib import Path

from flexdiffuse.params import PARAM_SPECS
from flexdiffuse.towers import split_hub_source
from flexdiffuse.webui.args import ARG_NAMES, IMAGE_INPUTS
from flexdiffuse.webui.families import TOWERS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
HOSTS_DOC = (ROOT / "docs" / "hosts.md").read_text(encoding="utf-8")
USAGE_DOC = (ROOT / "docs" / "usage.md").read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under ``## heading``, up to the next second-level heading."""
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_ci_runs_exactly_the_readme_test_command():
    command = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert f"```bash\n{command}\n```" in README


def test_readme_names_every_vision_tower_and_its_size():
    for tower in TOWERS:
        assert f"`{tower.default_source}`" in README
        assert tower.size in README
        assert tower.label in README


def readme_block(name: str) -> str:
    return README.split(f"<!-- {name} -->\n", 1)[1].split(f"\n<!-- /{name} -->", 1)[0]


def test_readme_lists_the_api_names_from_the_code():
    images = ", ".join(f"`{name}`" for name in IMAGE_INPUTS)
    rest = ", ".join(f"`{name}`" for name in ["enabled", *(s.name for s in PARAM_SPECS)])
    assert readme_block("API-NAMES") == f"{images} (images), {rest}"


def test_readme_gives_the_positional_order_from_the_code():
    assert readme_block("API-POSITIONAL") == f"`[{', '.join(ARG_NAMES)}]`"


def test_the_readme_opens_with_a_quick_start_for_each_host_family():
    headings = re.findall(r"^## (.+)$", README, flags=re.MULTILINE)
    assert headings[:2] == ["Quick start: AUTOMATIC1111 WebUI and Forge", "Quick start: ComfyUI"]


def test_the_comfyui_quick_start_links_the_download_page_of_every_tower():
    quick_start = section(README, "Quick start: ComfyUI")
    assert "models/clip_vision" in quick_start
    for tower in TOWERS:
        repo, folder = split_hub_source(tower.default_source)
        file = f"{folder}/model.safetensors" if folder else "model.safetensors"
        assert f"(https://huggingface.co/{repo}/blob/main/{file})" in quick_start, tower.label
        assert tower.label in quick_start


def test_the_readme_names_every_comfyui_node():
    nodes = (ROOT / "flexdiffuse" / "comfy" / "nodes.py").read_text(encoding="utf-8")
    names = re.findall(r'display_name="([^"]+)"', nodes)
    assert names
    for name in names:
        assert f"**{name}**" in section(README, "ComfyUI nodes"), name


def test_the_readme_keeps_one_line_per_host_of_the_hosts_table():
    """The CI-per-host table lives in docs/hosts.md; the README names each of its hosts."""
    rows = [line for line in section(HOSTS_DOC, "Tested hosts").splitlines() if line[:1] == "|"]
    hosts = [row.split("|")[1].strip().split(" (")[0] for row in rows[2:]]
    assert len(hosts) >= 7
    readme_hosts = section(README, "Hosts")
    assert "(docs/hosts.md)" in readme_hosts
    assert "| --- |" not in readme_hosts, "host tables belong in docs/hosts.md"
    for host in hosts:
        assert f"**{host}" in readme_hosts, host


def test_readme_and_hosts_doc_name_every_webui_folder_scanned_for_towers():
    """usage.md's table is the full list (tests/webui/test_tower_files.py checks the code);
    the README and docs/hosts.md must not name fewer folders, Forge's among them."""
    table = section(USAGE_DOC, "Towers already on disk")
    folders = set(re.findall(r"`(models/[^`]+)`", table))
    assert "models/ControlNetPreprocessor" in folders
    for text in (
        section(README, "Vision models"),
        section(HOSTS_DOC, "Where the vision files are found"),
    ):
        assert folders <= set(re.findall(r"`(models/[^`]+)`", text))
