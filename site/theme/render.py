"""The course website's MyST theme: renders the site that `myst build --html` prepared as static HTML.

mystmd turns the notebooks and the landing page into its site content (page ASTs with the stored
notebook outputs, images as files, math already typeset by KaTeX, links between pages resolved)
and serves it on CONTENT_CDN. Because template.yml names this script as its `build.render`
command, mystmd then runs it instead of starting a web-app theme, and it writes one HTML page per
site page into BUILD_DIRECTORY. Everything it needs is in this folder and in the Python standard
library: the build downloads nothing (mystmd's default theme would be downloaded at build time).

Each lesson page gets launch buttons (Binder, Colab) for the exercise notebook of the same name;
the build passes them in the JSON file named by COURSE_LAUNCH_LINKS (tools/build_site.py makes it
from pyproject.toml's repository URL). All links are relative, so the folder works when opened
from disk and under any base URL.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ASSETS = "build"  # folder of images, notebooks and the stylesheet inside the output
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS_BAR = re.compile(r"\d+%\|")  # tqdm's text form: " 40%|####      | 120/300 ..."
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class Site:
    """Fetches the prepared content and writes the pages."""

    def __init__(self, cdn: str, out: Path, launch_links: dict[str, dict[str, str]]) -> None:
        self.cdn = cdn.rstrip("/")
        self.out = out
        self.launch_links = launch_links
        self.config = self.get_json("/config.json")
        project = self.config["projects"][0]
        self.title = project.get("title", "")
        self.index = project["index"]
        self.pages = [{"slug": self.index, "title": "Home"}] + [
            page for page in project["pages"] if page.get("slug")
        ]
        self.slugs = {page["slug"] for page in self.pages}
        self.unknown_nodes: set[str] = set()

    # --- content -----------------------------------------------------------------------------
    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.cdn}{path}", timeout=30) as response:
            return response.read()

    def get_json(self, path: str) -> dict:
        return json.loads(self.get(path))

    def asset(self, path: str) -> str:
        """Copy the content file at ``path`` (e.g. "/3f2a.png") into the output; its site path."""
        name = path.rsplit("/", 1)[-1]
        target = self.out / ASSETS / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.get(path))
        return f"{ASSETS}/{name}"

    # --- pages -------------------------------------------------------------------------------
    @staticmethod
    def page_file(slug: str, index: str) -> str:
        return "index.html" if slug == index else f"{slug}/index.html"

    def render_all(self) -> None:
        (self.out / ASSETS).mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "style.css", self.out / ASSETS / "style.css")
        for number, page in enumerate(self.pages):
            data = self.get_json(f"/content/{page['slug']}.json")
            prefix = "" if page["slug"] == self.index else "../"
            body = Page(self, prefix).render(data["mdast"])
            previous = self.pages[number - 1] if number > 0 else None
            following = self.pages[number + 1] if number + 1 < len(self.pages) else None
            document = self.layout(page, data, body, prefix, previous, following)
            target = self.out / self.page_file(page["slug"], self.index)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(document, encoding="utf-8")
        if self.unknown_nodes:
            print(f"render.py: drew only the children of {sorted(self.unknown_nodes)}", file=sys.stderr)

    def href(self, slug: str, prefix: str) -> str:
        return prefix if slug == self.index else f"{prefix}{slug}/"

    def layout(self, page: dict, data: dict, body: str, prefix: str,
               previous: dict | None, following: dict | None) -> str:
        frontmatter = data.get("frontmatter", {})
        title = frontmatter.get("title") or page["title"]
        current = ' class="current"'
        nav = "\n".join(
            f'<li{current if item["slug"] == page["slug"] else ""}>'
            f'<a href="{self.href(item["slug"], prefix)}">{html.escape(item["title"])}</a></li>'
            for item in self.pages
        )
        launch = self.launch_bar(data, prefix)
        pager = "".join(
            f'<a class="{cls}" href="{self.href(item["slug"], prefix)}">{label} '
            f'{html.escape(item["title"])}</a>'
            for cls, label, item in (("prev", "&larr;", previous), ("next", "&rarr;", following))
            if item
        )
        heading = "" if frontmatter.get("content_includes_title") else f"<h1>{html.escape(title)}</h1>"
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · {html.escape(self.title)}</title>
<link rel="stylesheet" href="{prefix}{ASSETS}/style.css">
</head>
<body>
<header><a class="site-title" href="{self.href(self.index, prefix)}">{html.escape(self.title)}</a></header>
<div class="layout">
<nav class="toc" aria-label="Lessons"><ul>
{nav}
</ul></nav>
<main>
{launch}
<article>
{heading}
{body}
</article>
<footer class="pager">{pager}</footer>
</main>
</div>
</body>
</html>
"""

    def launch_bar(self, data: dict, prefix: str) -> str:
        links = self.launch_links.get(data.get("location", "").lstrip("/"))
        if not links:
            return ""
        buttons = [
            f'<a class="launch binder" href="{html.escape(links["binder"])}">Launch on Binder</a>',
            f'<a class="launch colab" href="{html.escape(links["colab"])}">Open in Colab</a>',
        ]
        for export in data.get("frontmatter", {}).get("exports", []):
            if export.get("format") == "ipynb" and export.get("url"):
                buttons.append(f'<a class="launch download" href="{prefix}{self.asset(export["url"])}" '
                               f'download="{html.escape(export.get("filename", ""))}">'
                               "Download (with outputs)</a>")
        note = ('<span class="launch-note">Binder and Colab open the exercise version of this '
                "lesson; this page shows it solved, with its outputs.</span>")
        return f'<div class="launch-bar">{"".join(buttons)}{note}</div>'


class Page:
    """Renders one page's MyST AST to HTML."""

    def __init__(self, site: Site, prefix: str) -> None:
        self.site = site
        self.prefix = prefix

    def render(self, node: dict) -> str:
        method = getattr(self, f"node_{node.get('type')}", None)
        if method is None:
            self.site.unknown_nodes.add(str(node.get("type")))
            return self.children(node)
        return method(node)

    def children(self, node: dict) -> str:
        return "".join(self.render(child) for child in node.get("children", []) or [])

    def wrap(self, tag: str, node: dict, attributes: str = "") -> str:
        return f"<{tag}{attributes}>{self.children(node)}</{tag}>"

    # block structure
    def node_root(self, node: dict) -> str:
        return self.children(node)

    def node_block(self, node: dict) -> str:
        kind = node.get("kind", "")
        css = "cell code-cell" if kind == "notebook-code" else "cell"
        return f'<section class="{css}">{self.children(node)}</section>\n'

    def node_heading(self, node: dict) -> str:
        depth = min(int(node.get("depth", 2)), 6)
        anchor = node.get("html_id") or node.get("identifier") or ""
        attributes = f' id="{html.escape(anchor)}"' if anchor else ""
        return f"<h{depth}{attributes}>{self.children(node)}</h{depth}>\n"

    def node_paragraph(self, node: dict) -> str:
        return self.wrap("p", node) + "\n"

    def node_list(self, node: dict) -> str:
        if node.get("ordered"):
            start = node.get("start")
            return self.wrap("ol", node, f' start="{int(start)}"' if start not in (None, 1) else "")
        return self.wrap("ul", node)

    def node_listItem(self, node: dict) -> str:  # noqa: N802 (MyST's node names)
        return self.wrap("li", node)

    def node_blockquote(self, node: dict) -> str:
        return self.wrap("blockquote", node)

    def node_thematicBreak(self, node: dict) -> str:  # noqa: N802
        return "<hr>"

    def node_break(self, node: dict) -> str:
        return "<br>"

    def node_table(self, node: dict) -> str:
        return f'<div class="table-wrap">{self.wrap("table", node)}</div>'

    def node_tableRow(self, node: dict) -> str:  # noqa: N802
        return self.wrap("tr", node)

    def node_tableCell(self, node: dict) -> str:  # noqa: N802
        align = node.get("align")
        attributes = f' style="text-align:{html.escape(align)}"' if align else ""
        return self.wrap("th" if node.get("header") else "td", node, attributes)

    def node_admonition(self, node: dict) -> str:
        return self.wrap("aside", node, f' class="admonition {html.escape(node.get("kind", "note"))}"')

    def node_admonitionTitle(self, node: dict) -> str:  # noqa: N802
        return self.wrap("p", node, ' class="admonition-title"')

    def node_html(self, node: dict) -> str:
        return node.get("value", "")

    def node_comment(self, node: dict) -> str:
        return ""

    # inline
    def node_text(self, node: dict) -> str:
        return html.escape(node.get("value", ""), quote=False)

    def node_emphasis(self, node: dict) -> str:
        return self.wrap("em", node)

    def node_strong(self, node: dict) -> str:
        return self.wrap("strong", node)

    def node_inlineCode(self, node: dict) -> str:  # noqa: N802
        return f"<code>{html.escape(node.get('value', ''))}</code>"

    def node_link(self, node: dict) -> str:
        return self.wrap("a", node, f' href="{html.escape(self.url(node.get("url", "")))}"')

    def node_crossReference(self, node: dict) -> str:  # noqa: N802
        """A reference to a section: "lesson.ipynb#glossary" in the source, resolved by mystmd."""
        anchor = node.get("html_id") or node.get("identifier") or ""
        url = node.get("url", "") + (f"#{anchor}" if anchor else "")
        return self.wrap("a", node, f' href="{html.escape(self.url(url))}"')

    def node_image(self, node: dict) -> str:
        url = node.get("url", "")
        src = self.prefix + self.site.asset(url) if url.startswith("/") else url
        alt = html.escape(node.get("alt", "") or "")
        return f'<img src="{html.escape(src)}" alt="{alt}">'

    def url(self, url: str) -> str:
        """A site-internal "/slug#anchor" becomes a relative link; anything else is kept."""
        if not url.startswith("/"):
            return url
        path, _, anchor = url.partition("#")
        slug = path.strip("/") or self.site.index
        if slug in self.site.slugs:
            return self.site.href(slug, self.prefix) + (f"#{anchor}" if anchor else "")
        return self.prefix + self.site.asset(path)  # a file of the site (a download)

    # math: KaTeX's HTML with MathML inside; the stylesheet shows the MathML (no fonts needed)
    def node_math(self, node: dict) -> str:
        return f'<div class="math">{node.get("html") or html.escape(node.get("value", ""))}</div>'

    def node_inlineMath(self, node: dict) -> str:  # noqa: N802
        return node.get("html") or f"<code>{html.escape(node.get('value', ''))}</code>"

    # notebook cells
    def node_code(self, node: dict) -> str:
        css = "source" if node.get("executable") else "code"
        return f'<pre class="{css}"><code>{html.escape(node.get("value", ""))}</code></pre>'

    def node_outputs(self, node: dict) -> str:
        rendered = "".join(self.render(child) for child in node.get("children", []) or [])
        return f'<div class="outputs">{rendered}</div>' if rendered else ""

    def node_output(self, node: dict) -> str:
        data = node.get("jupyter_data") or {}
        kind = data.get("output_type")
        if kind == "stream":
            text = ANSI.sub("", data.get("text", ""))
            return f'<pre class="output {html.escape(data.get("name", ""))}">{html.escape(text)}</pre>'
        if kind == "error":
            text = ANSI.sub("", "\n".join(data.get("traceback", [])))
            return f'<pre class="output error">{html.escape(text)}</pre>'
        return self.rich_output(data.get("data") or {})

    def mime_text(self, item: dict) -> str:
        if "content" in item:
            return item["content"]
        return self.site.get(item["path"]).decode("utf-8") if item.get("path") else ""

    def rich_output(self, bundle: dict) -> str:
        for mime in ("image/png", "image/jpeg", "image/gif", "image/svg+xml"):
            if mime in bundle and bundle[mime].get("path"):
                src = self.prefix + self.site.asset(bundle[mime]["path"])
                return f'<div class="output image"><img src="{html.escape(src)}" alt="plot"></div>'
        if WIDGET_MIME in bundle:
            plain = self.mime_text(bundle.get("text/plain", {}))
            if PROGRESS_BAR.search(plain):
                return ""  # a progress bar: means nothing on a static page
            return ('<p class="output widget">An interactive widget: launch this lesson on Binder '
                    "or Colab (buttons at the top) to use it.</p>")
        if "text/html" in bundle:
            return f'<div class="output html">{self.mime_text(bundle["text/html"])}</div>'
        if "text/plain" in bundle:
            text = self.mime_text(bundle["text/plain"])
            if re.fullmatch(r"<Figure size [^>]*>", text.strip()):
                return ""
            return f'<pre class="output result">{html.escape(ANSI.sub("", text))}</pre>'
        return ""


def main() -> int:
    out = Path(os.environ["BUILD_DIRECTORY"])
    links_file = os.environ.get("COURSE_LAUNCH_LINKS")
    launch_links = json.loads(Path(links_file).read_text()) if links_file else {}
    site = Site(os.environ["CONTENT_CDN"], out, launch_links)
    site.render_all()
    print(f"render.py: wrote {len(site.pages)} pages to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
