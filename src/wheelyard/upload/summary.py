"""What an upload tells people: the plan, what moved, install lines and GitHub Actions outputs."""

from __future__ import annotations

from wheelyard.report import Reporter, human_size
from wheelyard.upload.apply import UploadResult
from wheelyard.upload.layout import install_commands
from wheelyard.upload.plan import UploadPlan

FIND_LINKS_OUTPUT = "package_find_links_url"


def report_plan(plan: UploadPlan, reporter: Reporter, *, target: str) -> None:
    """The dry run: every key with its size and content type, in upload order."""
    rows = [
        (item.key, human_size(item.size), item.content_type, item.cache_control)
        for item in plan.objects
    ]
    reporter.table(
        f"Upload plan for {target} (dry run: nothing sent)",
        ["key", "size", "content type", "cache control"],
        rows,
    )
    reporter.line(
        f"{len(plan.objects)} objects, {human_size(plan.size)}; flat pages: "
        + ", ".join(plan.find_links_urls().values())
    )


def report_upload(
    result: UploadResult, reporter: Reporter, *, target: str, requirement: str
) -> None:
    """Tables of what was transferred and how to install; ``$GITHUB_OUTPUT`` find-links URLs."""
    plan = result.plan
    reporter.table(
        f"Upload to {target}",
        ["path", "size", "action"],
        [(r.item.relative, human_size(r.item.size), r.action) for r in result.results],
    )
    urls = plan.find_links_urls()
    reporter.table(
        "Install",
        ["group", "installer", "command"],
        [
            (group, installer, command)
            for group, url in urls.items()
            for installer, command in install_commands(requirement, url)
        ],
    )
    reporter.line(
        f"uploaded {result.count('uploaded')}, replaced {result.count('replaced')} pages, "
        f"skipped {result.count('skipped')} already there "
        f"({human_size(result.transferred_bytes)} sent)"
    )
    outputs = {f"{FIND_LINKS_OUTPUT}_{group}": url for group, url in urls.items()}
    outputs[FIND_LINKS_OUTPUT] = urls[plan.groups[0]]
    reporter.outputs(outputs)
