"""Fake ``modules.infotext_utils``: quoting and parsing of the parameters line."""

import json
import re

_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def quote(text):
    if not any(mark in str(text) for mark in (",", "\n", ":")):
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text):
    if not text or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def parameters_line(params):
    return ", ".join(
        k if k == v else f"{k}: {quote(v)}" for k, v in params.items() if v is not None
    )


def parse_generation_parameters(x):
    """Prompt, negative prompt and every key of the last line (values unquoted)."""
    *lines, last = x.strip().split("\n")
    if len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    res = {"Prompt": "", "Negative prompt": ""}
    negative = False
    for line in lines:
        if line.startswith("Negative prompt:"):
            negative, line = True, line[len("Negative prompt:") :].strip()
        key = "Negative prompt" if negative else "Prompt"
        res[key] = f"{res[key]}\n{line}" if res[key] else line
    for k, v in _PARAM.findall(last):
        res[k] = unquote(v)
    return res


UNCHANGED = object()
"""What ``paste_values`` gives for a control that pasting leaves as it is."""


def paste_values(fields, infotext):
    """The values "Paste" / "Send to" set on ``fields`` [(component, key)] from ``infotext``.

    Like A1111: callbacks see the parsed dict first; a key maps to a value or a callable; the
    text is converted to the type of the control's current value; failures leave it alone.
    """
    from modules import script_callbacks

    params = parse_generation_parameters(infotext)
    script_callbacks.infotext_pasted_callback(infotext, params)
    values = []
    for component, key in fields:
        v = key(params) if callable(key) else params.get(key, None)
        if v is None:
            values.append(UNCHANGED)
            continue
        valtype = type(component.value)
        try:
            if valtype is bool and v == "False":
                values.append(False)
            elif valtype is int:
                values.append(float(v))
            else:
                values.append(valtype(v))
        except Exception:
            values.append(UNCHANGED)
    return values


def api_infotext_values(fields, infotext):
    """The values an API request's ``infotext`` sets on ``fields`` (``api.apply_infotext``).

    Unlike pasting, no callback sees the parsed dict and the text is converted with the type
    of the control's value alone: ``bool("False")`` is True there.
    """
    params = parse_generation_parameters(infotext)
    values = []
    for component, key in fields:
        value = key(params) if callable(key) else params.get(key)
        target_type = type(component.value)
        if value is None or target_type is type(None):
            values.append(UNCHANGED)
            continue
        if not isinstance(value, target_type):
            value = target_type(value)
        values.append(value)
    return values
