#!/usr/bin/env python3
"""Checks deploy/prometheus/alerts.yaml for what `promtool check rules` cannot know.

Usage:
    python3 scripts/check_alerts.py [METRICS_URL]

promtool (CI runs `promtool check rules deploy/prometheus/alerts.yaml`) parses the rules:
YAML shape, PromQL syntax and functions, `for` durations, templates. It cannot know which
metrics this service exports, nor this repository's conventions. This script checks only
those:
  - every metric name in every expr (`accessgrant_*` and `grpc_server_*`, with
    `_bucket`/`_sum`/`_count` stripped for histograms) is declared in the `families!` table
    of src/metrics.rs, the one list of what the service exports;
  - every alert has labels.severity (page|ticket), annotations.summary and
    annotations.runbook_url, whose #anchor must be a heading of docs/operations.md.

With METRICS_URL (e.g. http://127.0.0.1:9464/metrics), also scrapes it: referenced names
missing from the scrape only warn (counters never incremented are not exported yet), and
accessgrant_*/grpc_server_* families in the scrape that src/metrics.rs does not declare warn
as well.

Exit status: 0 ok, 1 problems found (listed on stderr), 2 cannot run (e.g. PyYAML missing).
Needs PyYAML (`pip install pyyaml`).
"""
import re
import sys
import urllib.request
from pathlib import Path

try:
    import yaml
except ImportError:
    sys.stderr.write(
        "check_alerts.py: PyYAML is required but not installed; run `pip install pyyaml`\n"
    )
    sys.exit(2)

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
METRICS_RS = ROOT / "src" / "metrics.rs"
RUNBOOK = ROOT / "docs" / "operations.md"

METRIC_RE = re.compile(r"\b(?:accessgrant|grpc_server)_[a-z0-9_]+")
HIST_SUFFIXES = ("_bucket", "_sum", "_count")
SEVERITIES = {"page", "ticket"}
# A row of the `families!` table: `CONST: Kind = "name",`.
FAMILY_RE = re.compile(
    r'^[ \t]*([A-Z0-9_]+):[ \t]*(Counter|Gauge|Histogram)[ \t]*=[ \t]*"([a-z0-9_]+)",',
    re.MULTILINE,
)


def exported_metrics():
    """{name: is_histogram} from the `families!` table of src/metrics.rs."""
    text = METRICS_RS.read_text(encoding="utf-8")
    return {name: kind == "Histogram" for _const, kind, name in FAMILY_RE.findall(text)}


def base_name(token, known):
    """The declared metric a token refers to, or None."""
    if token in known:
        return token
    for suffix in HIST_SUFFIXES:
        if token.endswith(suffix):
            stripped = token[: -len(suffix)]
            if known.get(stripped):  # only histograms have these series
                return stripped
    return None


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def slug(heading):
    """GitHub-style anchor of a Markdown heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def runbook_anchors():
    if not RUNBOOK.exists():
        return None
    anchors = set()
    in_fence = False
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence and re.match(r"#{1,6} ", line):
            anchors.add(slug(line.lstrip("#")))
    return anchors


def scrape(url):
    """Metric family names present in a Prometheus text exposition."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode("utf-8", "replace")
    families, samples = set(), set()
    for line in text.splitlines():
        if line.startswith("# TYPE ") or line.startswith("# HELP "):
            parts = line.split()
            if len(parts) >= 3:
                families.add(parts[2])
        elif line and not line.startswith("#"):
            samples.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    for name in samples:
        families.add(name)
        for suffix in HIST_SUFFIXES:
            if name.endswith(suffix):
                families.add(name[: -len(suffix)])
    return families


def check_rules(doc, known, anchors, problems):
    """Returns the set of declared metric names referenced by the rules."""
    used = set()
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        problems.append(f"{ALERTS.relative_to(ROOT)}: no top-level `groups:` list")
        return used
    for group in doc["groups"]:
        gname = group.get("name", "?") if isinstance(group, dict) else "?"
        rules = group.get("rules") if isinstance(group, dict) else None
        if not isinstance(rules, list) or not rules:
            problems.append(f"group {gname}: no `rules:` list")
            continue
        for i, rule in enumerate(rules):
            if not isinstance(rule, dict):
                problems.append(f"group {gname} rule #{i}: not a mapping")
                continue
            name = rule.get("alert") or rule.get("record") or f"{gname} rule #{i}"
            where = f"rule {name}"
            expr = rule.get("expr")
            if not isinstance(expr, str):
                expr = ""  # promtool reports it
            if "alert" in rule:
                labels = rule.get("labels") or {}
                annotations = rule.get("annotations") or {}
                severity = labels.get("severity")
                if not severity:
                    problems.append(f"{where}: missing labels.severity")
                elif severity not in SEVERITIES:
                    problems.append(f"{where}: labels.severity {severity!r} is not page or ticket")
                if not annotations.get("summary"):
                    problems.append(f"{where}: missing annotations.summary")
                url = annotations.get("runbook_url")
                if not url:
                    problems.append(f"{where}: missing annotations.runbook_url")
                elif anchors is not None and "#" in url and url.startswith("docs/operations.md"):
                    anchor = url.split("#", 1)[1]
                    if anchor not in anchors:
                        problems.append(f"{where}: runbook_url anchor #{anchor} is not a heading of docs/operations.md")
            code = strip_strings(expr)
            for token in sorted(set(METRIC_RE.findall(code))):
                base = base_name(token, known)
                if base is None:
                    problems.append(f"{where}: metric {token} is not exported (not declared in src/metrics.rs)")
                else:
                    used.add(base)
    return used


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        sys.stderr.write(__doc__)
        return 2
    problems, warnings = [], []
    try:
        known = exported_metrics()
        doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        sys.stderr.write(f"check_alerts.py: {e}\n")
        return 1
    if not known:
        problems.append("src/metrics.rs: found no row `CONST: Kind = \"name\",` in `families!`")
    anchors = runbook_anchors()
    if anchors is None:
        problems.append("docs/operations.md is missing (runbook_url targets)")
    used = check_rules(doc, known, anchors, problems)

    if len(argv) == 2:
        url = argv[1]
        try:
            live = scrape(url)
        except Exception as e:  # noqa: BLE001 - any failure to scrape is one problem
            problems.append(f"cannot scrape {url}: {e}")
        else:
            for name in sorted(used - live):
                warnings.append(f"{name} is not in the scrape of {url} yet (never recorded?)")
            for name in sorted(n for n in live if n.startswith(("accessgrant_", "grpc_server_"))):
                if base_name(name, known) is None:
                    warnings.append(f"{url} exports {name}, which src/metrics.rs does not declare")

    for w in warnings:
        sys.stderr.write(f"warning: {w}\n")
    if problems:
        sys.stderr.write(f"{len(problems)} problem(s) in {ALERTS.relative_to(ROOT)}:\n")
        for p in problems:
            sys.stderr.write(f"  - {p}\n")
        return 1
    print(f"ok: {ALERTS.relative_to(ROOT)}: every rule is complete and uses only the "
          f"{len(used)} of {len(known)} declared metrics it references")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
