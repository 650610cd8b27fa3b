#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Check the relative links of the project's Markdown and RST files.

Every link to a file of the repository must name a file that exists,
and a link with an anchor (file.md#anchor, or #anchor within a file) a
heading of that Markdown file, as GitHub turns headings into anchors.
Links with a scheme (https:, mailto:) are not followed.

Usage: check-links.py TOP.  Prints each broken link, then
"links: N passed, M failed".
"""

import os
import re
import sys

MD_LINK = re.compile(r'(?<!\!)\[[^\]]*\]\(([^)\s]+)\)|^\[[^\]]+\]:\s+(\S+)',
                     re.M)
RST_LINK = re.compile(r'`[^`<]*<([^>`]+)>`__?')
CODE = re.compile(r'^(```|~~~).*?^\1', re.M | re.S)
INLINE_CODE = re.compile(r'`[^`\n]*`')


def anchors(path):
    """The anchors GitHub gives the headings of the Markdown file PATH."""
    seen = {}
    result = set()
    text = CODE.sub('', open(path, encoding='utf-8').read())
    for m in re.finditer(r'^#{1,6}\s+(.*?)\s*#*\s*$', text, re.M):
        slug = re.sub(r'[^\w\- ]', '', m.group(1).lower()).replace(' ', '-')
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else '%s-%d' % (slug, n))
    return result


def links(path):
    text = CODE.sub('', open(path, encoding='utf-8').read())
    if path.endswith('.md'):
        text = INLINE_CODE.sub('', text)
        for m in MD_LINK.finditer(text):
            yield m.group(1) or m.group(2)
    else:
        for m in RST_LINK.finditer(text):
            yield m.group(1)


def broken(top, path, target):
    """Why TARGET, linked from PATH, does not resolve, or None."""
    if re.match(r'[a-z][a-z0-9+.-]*:', target):
        return None
    name, _, anchor = target.partition('#')
    dest = os.path.normpath(os.path.join(os.path.dirname(path), name)) \
        if name else path
    if not dest.startswith(top) or not os.path.exists(dest):
        return 'no file %s' % os.path.relpath(dest, top)
    if anchor:
        if not dest.endswith('.md'):
            return None
        if anchor not in anchors(dest):
            return 'no heading for #%s in %s' % (anchor,
                                                os.path.relpath(dest, top))
    return None


def project_files(top):
    for name in sorted(os.listdir(top)):
        if name.endswith('.md'):
            yield os.path.join(top, name)
    for sub in ('docs', 'build-glue', 'harness'):
        for root, dirs, files in os.walk(os.path.join(top, sub)):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(('.md', '.rst')):
                    yield os.path.join(root, name)


def main():
    top = os.path.abspath(sys.argv[1])
    passed = failed = 0
    for path in project_files(top):
        for target in links(path):
            why = broken(top, path, target)
            if why:
                failed += 1
                print('%s: %s: %s' % (os.path.relpath(path, top), target, why))
            else:
                passed += 1
    print('links: %d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
