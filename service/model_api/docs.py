"""The /docs page: HTML rendered from the OpenAPI document on the server; no script, no CDN, works offline."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:62rem;padding:0 1rem;color:#222}
code{font:13px ui-monospace,monospace;background:#f4f4f4;padding:.1rem .3rem}
section{border:1px solid #ddd;border-radius:6px;margin:.8rem 0;padding:.2rem .9rem}
.m{display:inline-block;min-width:3.5rem;font-weight:bold}
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
"""


def page(document: dict[str, Any]) -> str:
    info = document["info"]
    sections = [
        _operation(path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(info['title'])}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(info['title'])} {escape(info['version'])}</h1><p>{escape(info['description'])}</p>"
        '<p>Machine-readable contract: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>'
        + "".join(sections)
        + "</body></html>"
    )


def _operation(path: str, method: str, operation: dict[str, Any]) -> str:
    parts = [f'<section><h3><span class="m">{method.upper()}</span><code>{escape(path)}</code></h3>']
    parts.append(f"<p>{escape(operation.get('summary', ''))}</p>")
    parameters = operation.get("parameters", [])
    if parameters:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
            f"<td>{escape(p['schema'].get('type', ''))}</td><td>{escape(p.get('description', ''))}</td></tr>"
            for p in parameters
        )
        parts.append(
            f"<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>{rows}</table>"
        )
    if "requestBody" in operation:
        types = ", ".join(operation["requestBody"]["content"])
        parts.append(f"<p>Request body: <code>{escape(types)}</code> (schema in /openapi.json)</p>")
    if "security" in operation:
        parts.append(
            "<p>Requires the API key: <code>X-API-Key</code> or <code>Authorization: Bearer</code>.</p>"
        )
    responses = "".join(
        f"<tr><td><code>{escape(code)}</code></td><td>{escape(response['description'])}</td></tr>"
        for code, response in operation["responses"].items()
    )
    parts.append(f"<table><tr><th>status</th><th>meaning</th></tr>{responses}</table></section>")
    return "".join(parts)
