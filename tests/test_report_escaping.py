"""The report is Markdown that viewers render with HTML: names, messages and config text from a
config or an endpoint are shown literally and can never change the document's structure."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from fmb.paths import ResultsLayout, slug
from fmb.reports.format import code, fence_for, text
from fmb.reports.render import render_report
from fmb.warehouse.build import build, warehouse_path
from tests import rawdata

pytestmark = pytest.mark.slow  # servers in subprocesses, dbt builds or a real model

BENCHMARK = "wh <script>alert(1)</script> | [x](http://evil.example)"
MODEL = "m ``` <img src=x onerror=alert(2)> </code> _em_ *b*"
TITLE = "T [link](http://evil.example) ![i](http://evil.example/i.png) <b>bold</b> | pipe ~~s~~ #"
EXP_STREAMED = "e1 <script>x</script> | `code` **b** [l](u)"
EXP_NOT_STREAMED = "e2 ```yaml </details> # h"
INSTANCE = "<iframe src=x>|`"
PAYLOAD = "payload_en_1-100 <svg onload=alert(3)> | `x`.jsonl"
MESSAGE = "boom <script>alert(4)</script>\n# heading\n| a | b |\n```\n[link](http://evil.example) ![i](x.png)"
HOSTILE = [BENCHMARK, MODEL, TITLE, EXP_STREAMED, EXP_NOT_STREAMED, INSTANCE, PAYLOAD, MESSAGE]

CONFIG = f"""
general: {{name: {BENCHMARK!r}, model_name: {MODEL!r}}}
pricing: pricing.yml
metrics: {{dataset_of_interest: en_1-100}}
report: {{title: {TITLE!r}, latency_budget: 100, cost_per_10k_txn_budget: 1000, error_rate_budget: 0.5}}
experiments:
- name: {EXP_STREAMED!r}
  api: openai-chat
  endpoint_url: http://127.0.0.1:9/v1
  instance_type: ml.g5.xlarge
  stream: true
  payload_files: [{PAYLOAD!r}, payload_en_1-100.jsonl]
  concurrency_levels: [1, 2]
  note: "a config value that tries to close the fence: ```` and ``` <script>alert(5)</script>"
- name: {EXP_NOT_STREAMED!r}
  api: openai-chat
  endpoint_url: http://127.0.0.1:9/v1
  instance_type: {INSTANCE!r}
  stream: false
  payload_files: [payload_en_1-100.jsonl]
  concurrency_levels: [1]
"""
PRICING = "pricing:\n  instance_based: {ml.g5.xlarge: 1.4084, " + repr(INSTANCE) + ": 2.0}\n"

# A tag, comment or declaration as HTML starts it (a `<` before `=` or a space is no tag).
HTML_START = re.compile(r"<[A-Za-z/!?]")
# An inline code span (shown literally, HTML included).
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    tmp = tmp_path_factory.mktemp("escaping")
    results = tmp / "results"
    payloads = ResultsLayout(results).payload_dir(BENCHMARK)
    payloads.mkdir(parents=True)
    (payloads / PAYLOAD).write_text('{"inputs": "a prompt"}\n')

    def hostile_rows(*args, **kwargs) -> list[dict]:
        rows = fake_rows(*args, **kwargs)
        for row in rows:
            if row["status"] != "ok":
                row["error_message"] = MESSAGE
                row["error_type"] = "kind <b>|"
            if row["experiment"] == EXP_NOT_STREAMED:
                row.update(stream=False, ttft_ms=None, ttlt_ms=None, chunk_gaps_ms=None, content_chunks=None)
        return rows

    fake_rows = rawdata.fake_rows
    patch = pytest.MonkeyPatch()
    patch.setattr(rawdata, "fake_rows", hostile_rows)
    try:
        rawdata.write_run(
            tmp,
            results,
            3,
            datetime(2026, 4, 1, tzinfo=UTC),
            config_text=CONFIG,
            pricing_text=PRICING,
            rows_per_cell=40,
        )
    finally:
        patch.undo()
    build(results)
    made = render_report(warehouse_path(results), None, None, results)
    assert made.path.parent.name == slug(BENCHMARK)
    return made.path.read_text(encoding="utf-8")


def parse(markdown: str) -> list[Token]:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(markdown)


def inline_text(token: Token) -> str:
    """The literal text an inline token renders (code spans and escapes resolved)."""
    return "".join(child.content for child in token.children or [] if child.type in ("text", "code_inline"))


def config_fence(markdown: str) -> tuple[str, str, str]:
    """(before, config text, after) around the config's code fence."""
    match = re.search(r"^(`{3,})yaml\n(.*?)^\1$", markdown, re.S | re.M)
    assert match, "no config fence"
    return markdown[: match.start()], match.group(2), markdown[match.end() :]


def test_no_value_injects_html_links_or_structure(report: str) -> None:
    before, config, after = config_fence(report)
    outside_code = CODE_SPAN.sub("", before.replace("\\`", ""))
    assert not HTML_START.search(outside_code), HTML_START.search(outside_code)
    assert after.strip() == ""
    assert "<script>alert(5)</script>" in config  # shown literally inside the fence

    tokens = parse(report)
    assert not [t for t in tokens if t.type.startswith("html")]
    inline = [c for t in tokens if t.type == "inline" for c in t.children or []]
    assert not [c for c in inline if c.type.startswith("html") or c.type == "link_open"]
    images = [c.attrGet("src") for c in inline if c.type == "image"]
    assert images and all(str(src).endswith(".png") and "/" not in str(src) for src in images)  # the charts only

    headings = [(t.tag, inline_text(tokens[i + 1])) for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert [h for h in headings if h[0] == "h1"] == [("h1", TITLE)]
    assert [h[1] for h in headings if h[0] == "h2"] == [
        "Summary",
        "Charts",
        "Load curves and their knees",
        "All cells",
        "Failed requests",
        "Cost of the run",
        "Definitions",
        "Configuration",
    ]
    h3 = [h[1] for h in headings if h[0] == "h3"]
    assert EXP_STREAMED in h3 and EXP_NOT_STREAMED in h3

    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1 and fences[0].info == "yaml" and fences[0].content == config


def test_tables_keep_their_columns_and_show_values_literally(report: str) -> None:
    tokens = parse(report)
    shown: list[str] = []
    columns = None
    for i, t in enumerate(tokens):
        if t.type == "thead_open":
            columns = 0
        elif t.type == "th_open" and columns is not None:
            columns += 1
        elif t.type == "tr_open":
            cells = 0
        elif t.type == "td_open":
            cells += 1
            shown.append(inline_text(tokens[i + 1]))
        elif t.type == "tr_close" and tokens[i - 1].type == "td_close":
            assert cells == columns, (cells, columns)
        elif t.type == "table_close":
            columns = None
    for value in (BENCHMARK, MODEL, EXP_STREAMED, EXP_NOT_STREAMED, INSTANCE, PAYLOAD, "kind <b>|"):
        assert any(value in s for s in shown), value  # shown literally, whole
    message = MESSAGE.replace("\n", " ")
    assert any(s.startswith(message[:100]) for s in shown)


def test_cells_that_were_not_streamed_say_so(report: str) -> None:
    section = report.split("### " + text(EXP_NOT_STREAMED))[1].split("## Failed requests")[0]
    assert "not streamed" in section and "not measured | not measured" in section
    assert "TTFT and time per output token were not measured" in section
    assert "`stream: true`" in section and "`inference_spec.stream: true`" in section
    streamed = report.split("### " + text(EXP_STREAMED))[1].split("### ")[0]
    assert "not measured" not in streamed


@pytest.mark.parametrize("value", [*HOSTILE, "", "`", "``a``", "a | b", "x_y_z", "_lead", "trail_"])
def test_filters_round_trip_through_a_markdown_parser(value: str) -> None:
    flat = re.sub(r"[\r\n]+", " ", value)
    for markdown, expected in (
        (f"| h |\n|---|\n| {text(value)} |\n", flat),
        (f"| h |\n|---|\n| {code(value)} |\n", flat),
        (f"para {text(value)} end\n", f"para {flat} end"),
        (f"para {code(value, in_table=False)} end\n", f"para {flat} end"),
    ):
        tokens = parse(markdown)
        inline = [t for t in tokens if t.type == "inline"]
        got = inline_text(inline[-1])
        if expected.startswith("para"):
            assert got.replace("  ", " ") == expected.replace("  ", " "), markdown
        else:
            assert got.strip() == expected.strip(), markdown
        assert not [c for t in inline for c in t.children or [] if c.type not in ("text", "code_inline", "softbreak")]
    content = f"a\n{value}\n```\n````x\n"
    fence = fence_for(content)
    tokens = parse(f"{fence}yaml\n{content}{fence}\nafter\n")
    assert tokens[0].type == "fence" and tokens[0].content == content
