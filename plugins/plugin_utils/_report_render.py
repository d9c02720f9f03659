# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering: the report model as HTML, Markdown and JSON text, through the Jinja2 templates.

The templates sit next to this file in templates/stress_report/, so they are found from
__file__ at run time wherever the collection is installed, and ``ansible-galaxy collection
build`` packs them with the plugins. Controller-side only: it imports jinja2.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_model import json_document

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", "stress_report")


# Characters Markdown (CommonMark/GFM) acts on in the middle of a line or a table cell. Every value is
# placed mid-line by the template, so line-start markers (#, -, +, 1.) need no escape; an underscore inside
# a word (snake_case) emphasises nothing and is left as it is.
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md_escape(text):
    """Text from results (titles, host names, process names, messages) as inert Markdown: raw HTML and
    Markdown control characters are escaped, and it stays on one line (a table cell or list item)."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(text):
    """A one-line code span that no backtick, pipe or newline in ``text`` can break out of."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "`" * (max([len(run) for run in re.findall(r"`+", text)] or [0]) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return "%s%s%s%s%s" % (fence, pad, text, pad, fence)


def environment():
    import jinja2  # controller only; imported here so the rest of this module loads without it

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md_escape
    env.filters["md_code"] = md_code
    return env


def render(model, formats):
    """{format: text}. Rendering is deterministic: same input, same bytes (so changed means changed)."""
    env = environment()
    out = {}
    for fmt in formats:
        if fmt == "json":
            out[fmt] = json.dumps(json_document(model), indent=2, sort_keys=True) + "\n"
        else:
            name = "report.html.j2" if fmt == "html" else "report.md.j2"
            out[fmt] = env.get_template(name).render(**model)
    return out


def render_template(template, values):
    """One template (game_day.md.j2, stresschaos.md.j2) rendered with the mapping ``values``."""
    return environment().get_template(template).render(**values)
