#!/usr/bin/env python3
"""Checks deploy/prometheus/alerts.yaml against the metrics the service really exports.

Usage:
    python3 scripts/check_alerts.py [METRICS_URL]

Static checks (always):
  - every rule has alert (or record), expr; alerts also labels.severity (page|ticket),
    annotations.summary and annotations.runbook_url, whose #anchor must be a heading of
    docs/operations.md;
  - every metric name in every expr (`accessgrant_[a-z0-9_]+`, with `_bucket`/`_sum`/`_count`
    stripped for histograms) is a `pub const NAME: &str = "accessgrant_...";` of src/metrics.rs;
  - parentheses, brackets and braces balance, and every function/keyword applied with `(` is
    in a small allowlist.

With METRICS_URL (e.g. http://127.0.0.1:9464/metrics), also scrapes it: referenced names
missing from the scrape only warn (counters never incremented are not exported yet), and
accessgrant_* families in the scrape that src/metrics.rs does not declare warn as well.

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

METRIC_RE = re.compile(r"accessgrant_[a-z0-9_]+")
HIST_SUFFIXES = ("_bucket", "_sum", "_count")
FUNCTIONS = {
    "rate", "increase", "changes", "sum", "by", "histogram_quantile", "max", "min", "avg",
    "count", "absent", "irate", "delta", "deriv", "on", "ignoring", "without", "and", "or",
    "unless", "clamp_min",
}
SEVERITIES = {"page", "ticket"}
CONST_RE = re.compile(
    r'((?:^[ \t]*///[^\n]*\n)*)^[ \t]*pub const ([A-Z0-9_]+): &str = "(accessgrant_[a-z0-9_]+)";',
    re.MULTILINE,
)


def exported_metrics():
    """{name: is_histogram} from the `pub const` declarations of src/metrics.rs."""
    text = METRICS_RS.read_text(encoding="utf-8")
    found = {}
    for doc, _const, name in CONST_RE.findall(text):
        found[name] = "histogram" in doc.lower()
    return found


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


def balanced(expr):
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for ch in expr:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


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
            if "alert" not in rule and "record" not in rule:
                problems.append(f"{where}: missing `alert`")
            expr = rule.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{where}: missing `expr`")
                expr = ""
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
                if "for" in rule and not re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", str(rule["for"])):
                    problems.append(f"{where}: `for: {rule['for']}` is not a duration")
            code = strip_strings(expr)
            if not balanced(code):
                problems.append(f"{where}: unbalanced parentheses/brackets/braces in expr")
            for fn in re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(", code):
                if fn not in FUNCTIONS:
                    problems.append(f"{where}: unknown function or keyword {fn!r} in expr")
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
        problems.append("src/metrics.rs: found no `pub const NAME: &str = \"accessgrant_...\";`")
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
            for name in sorted(n for n in live if n.startswith("accessgrant_")):
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
