#!/usr/bin/env python3
"""Checks the figures the /admin page shows against the analytics API answer it was rendered from.

    python3 bench/lib/check_admin_dom.py DOM.html ANALYTICS.json

DOM.html is Chromium's `--dump-dom` output of /admin; ANALYTICS.json is the body of
GET /api/admin/analytics fetched with the same query. Every element carrying data-metric="NAME"
and data-value="N" is collected; every overall and per-tenant metric of the API answer must appear,
and both its data-value and its visible text (thousands separators removed) must equal the API
number. Metrics on the page that the answer does not have (e.g. a stale tenant row) are mismatches
too. Exits 0 only when everything matches, at least one tenant was checked and the page says it is
ready (body data-state="ready"). Stdlib only.
"""
import json
import sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
OVERALL = ["tenants", "pets.active", "pets.removed", "commands", "events", "rate_limited_requests", "cross_tenant_attempts"]
TENANT = ["pets.active", "pets.removed", "commands", "events", "rate_limited_requests", "cross_tenant_attempts"]


class MetricParser(HTMLParser):
    """Collects (name, data-value, text) for each data-metric element, and the body's data-state."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.open = []  # [depth, name, value, text parts] of metric elements not yet closed
        self.metrics = []
        self.body_state = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body_state = attrs.get("data-state")
        if tag in VOID:
            return
        self.depth += 1
        if "data-metric" in attrs:
            self.open.append([self.depth, attrs["data-metric"], attrs.get("data-value"), []])

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self.open and self.open[-1][0] >= self.depth:
            _, name, value, text = self.open.pop()
            self.metrics.append((name, value, "".join(text)))
        self.depth -= 1

    def handle_data(self, data):
        for entry in self.open:
            entry[3].append(data)


def pick(obj, path):
    for key in path.split("."):
        obj = obj[key]
    return obj


def expected_metrics(analytics):
    expected = {f"overall.{name}": pick(analytics["overall"], name) for name in OVERALL}
    for tenant in analytics["tenants"]:
        for name in TENANT:
            expected[f"tenant.{tenant['slug']}.{name}"] = pick(tenant, name)
    return expected


def as_int(text):
    cleaned = "".join((text or "").split()).replace(",", "")
    try:
        return int(cleaned)
    except ValueError:
        return None


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    parser = MetricParser()
    with open(argv[1], encoding="utf-8") as dom:
        parser.feed(dom.read())
    parser.close()
    with open(argv[2], encoding="utf-8") as body:
        analytics = json.load(body)

    expected = expected_metrics(analytics)
    found = {}
    for name, value, text in parser.metrics:
        found.setdefault(name, []).append((value, text.strip()))

    rows, problems = [], []
    for name, want in expected.items():
        shown = found.get(name)
        if not shown:
            rows.append((name, want, "-", "-", "MISSING"))
            problems.append(f"{name}: not on the page (API says {want})")
            continue
        for value, text in shown:
            ok = as_int(value) == want and as_int(text) == want and str(value) == str(want)
            rows.append((name, want, value, text, "ok" if ok else "MISMATCH"))
            if not ok:
                problems.append(f"{name}: API {want}, data-value {value!r}, text {text!r}")
    for name in sorted(set(found) - set(expected)):
        for value, text in found[name]:
            rows.append((name, "-", value, text, "UNEXPECTED"))
            problems.append(f"{name}: on the page ({text!r}) but not in the API answer")

    widths = [max(len(str(row[i])) for row in rows + [("metric", "api", "data-value", "text", "status")]) for i in range(5)]
    line = lambda row: "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
    print(line(("metric", "api", "data-value", "text", "status")))
    print(line(tuple("-" * width for width in widths)))
    for row in rows:
        print(line(row))
    print()

    tenants = len(analytics["tenants"])
    if parser.body_state != "ready":
        problems.append(f"page state is {parser.body_state!r}, not 'ready'")
    if tenants == 0:
        problems.append("the API answer lists no tenant, so no tenant metric was checked")
    if problems:
        print(f"FAIL {len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"OK {len(expected)} metrics match ({len(OVERALL)} overall, {tenants} tenant(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
