#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Keep the patch queue and the overlay in step with a git tree of QEMU.

The repository holds the series in two halves: new files at their QEMU
path (the overlay) and edits of upstream files as patches under patches/.
patches/series lists the patches in order; the indented lines under a
patch name the overlay files that belong to the same commit.

build/src is a git repository whose history is the series itself:

    upstream  QEMU as Debian ships it (build-glue/upstream.conf)
    base      + patches/local/*.patch (build fixes, never exported)
              + the files patches/local/files names (the project's own
              tests at their QEMU path, never exported)
    HEAD      + one commit per series entry (patch + its overlay files)

Subcommands:
    prepare   create or update build/src from the repository
    refresh   fold edits of upstream files made in build/src into their
              commits, then write the commits back to the repository
    import    write the commits base..HEAD of build/src back to the
              repository (patches/, patches/series and the overlay)
    export    write the series as git format-patch files to build/series
    verify    check that the exported series applies to base (upstream
              with what patches/local brings from upstream's master) and
              reproduces build/src exactly
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATCHES = os.path.join(TOP, 'patches')
SERIES = os.path.join(PATCHES, 'series')
LOCAL = os.path.join(PATCHES, 'local')
BUILD = os.path.join(TOP, 'build')
SRC = os.path.join(BUILD, 'src')
WORKTREE = os.path.join(BUILD, 'queue')
STAMP = 'queue-applied'
BASE_STAMP = 'queue-base'
LOCAL_FILES = os.path.join(LOCAL, 'files')

SERIES_HEADER = """\
# The patch queue, applied in this order on top of upstream QEMU.
# Each line names a patch; the indented lines below it are the overlay
# files (new files, at their QEMU path in this repository) that belong to
# the same commit of the exported series.  Written by 'make refresh';
# edit by hand only to reorder.
"""

GIT_ID = ['-c', 'user.name=Driver Status Dev',
          '-c', 'user.email=dev@localhost',
          '-c', 'safe.directory=*']


class QueueError(Exception):
    pass


def upstream_conf():
    """The KEY=value settings of build-glue/upstream.conf."""
    conf = {}
    with open(os.path.join(TOP, 'build-glue', 'upstream.conf')) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith('#'):
                key, value = line.split('=', 1)
                conf[key] = value
    return conf


UPSTREAM = upstream_conf()


def git(*args, cwd=SRC, check=True, capture=True, env=None):
    cmd = ['git'] + GIT_ID + list(args)
    res = subprocess.run(cmd, cwd=cwd, text=True, env=env,
                         stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.PIPE if capture else None)
    if check and res.returncode != 0:
        raise QueueError('git %s failed:\n%s%s' %
                         (' '.join(args), res.stdout or '', res.stderr or ''))
    return res.stdout if capture else ''


def read_series():
    """Return [(patch, [overlay files])] from patches/series."""
    entries = []
    if not os.path.exists(SERIES):
        return entries
    with open(SERIES) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            if line[0].isspace():
                if not entries:
                    raise QueueError('%s:%d: overlay file before any patch'
                                     % (SERIES, lineno))
                entries[-1][1].append(line.strip())
            else:
                entries.append((line.strip(), []))
    return entries


def write_series(entries):
    with open(SERIES + '.tmp', 'w') as f:
        f.write(SERIES_HEADER)
        for patch, files in entries:
            f.write('\n' + patch + '\n')
            for name in files:
                f.write('    ' + name + '\n')
    os.replace(SERIES + '.tmp', SERIES)


def local_patches():
    if not os.path.isdir(LOCAL):
        return []
    return sorted(os.path.join(LOCAL, p) for p in os.listdir(LOCAL)
                  if p.endswith('.patch'))


def local_files():
    """The overlay files of the base commit (patches/local/files)."""
    if not os.path.exists(LOCAL_FILES):
        return []
    with open(LOCAL_FILES) as f:
        return [line.strip() for line in f
                if line.strip() and not line.startswith('#')]


def base_digest():
    """A digest of everything that defines the base commit."""
    h = hashlib.sha256()
    for path in local_patches():
        h.update(open(path, 'rb').read())
    for name in local_files():
        h.update(name.encode() + b'\0')
        h.update(open(os.path.join(TOP, name), 'rb').read())
    return h.hexdigest()


def queue_digest():
    """A digest of everything that defines the committed series."""
    h = hashlib.sha256()
    h.update(base_digest().encode())
    for patch, files in read_series():
        h.update(open(os.path.join(PATCHES, patch), 'rb').read())
        for name in files:
            h.update(name.encode() + b'\0')
            h.update(open(os.path.join(TOP, name), 'rb').read())
    return h.hexdigest()


def overlay_files():
    return [name for _, files in read_series() for name in files]


def same_content(a, b):
    if not os.path.exists(b):
        return False
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        return fa.read() == fb.read()


def copy_overlay(dest, names):
    """Copy overlay files into dest, leaving unchanged files untouched."""
    changed = []
    for name in names:
        src = os.path.join(TOP, name)
        dst = os.path.join(dest, name)
        if same_content(src, dst):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        shutil.copymode(src, dst)
        changed.append(name)
    return changed


def reconcile_overlay():
    """Bring overlay edits made on either side to the other side.

    An overlay file may be edited in the repository or in build/src.
    Whichever side differs from what build/src has committed is the
    edit; an edit on both sides is a conflict.  (An edit of a base file
    reaches base when prepare builds base again.)
    """
    changed = []
    for name in overlay_files() + local_files():
        repo = os.path.join(TOP, name)
        tree = os.path.join(SRC, name)
        if same_content(repo, tree):
            continue
        res = subprocess.run(['git'] + GIT_ID + ['show', 'HEAD:' + name],
                             cwd=SRC, capture_output=True)
        committed = res.stdout if res.returncode == 0 else None
        with open(repo, 'rb') as f:
            in_repo = f.read()
        in_tree = None
        if os.path.exists(tree):
            with open(tree, 'rb') as f:
                in_tree = f.read()
        if in_tree is None or in_tree == committed:
            copy_overlay(SRC, [name])
            changed.append(name)
        elif in_repo == committed:
            shutil.copyfile(tree, repo)
            changed.append(name + ' (from build/src)')
        else:
            raise QueueError('%s was edited both here and in build/src' % name)
    return changed


def unpack(tarball):
    """Create build/src with the upstream and base tags."""
    tmp = SRC + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    subprocess.run(['tar', '-C', tmp, '--strip-components=1',
                    '--no-same-owner', '-xf', tarball], check=True)
    git('init', '-q', '-b', 'queue', cwd=tmp)
    git('add', '-A', '-f', '.', cwd=tmp)
    git('commit', '-q', '--no-verify', '-m',
        'QEMU %s as shipped in Debian\'s orig tarball (%s)'
        % (UPSTREAM['QEMU_VERSION'], UPSTREAM['QEMU_TARBALL']), cwd=tmp)
    git('tag', 'upstream', cwd=tmp)
    make_base(tmp)
    os.rename(tmp, SRC)


def add_local(tree):
    """Commit the local patches and files on top of what TREE has."""
    for path in local_patches():
        git('am', '-q', '--keep-cr', path, cwd=tree)
    names = local_files()
    if names:
        copy_overlay(tree, names)
        git('add', '-f', '--', *names, cwd=tree)
        git('commit', '-q', '--no-verify', '-m',
            'The project\'s own files (never exported)', cwd=tree)


def make_base(tree):
    """Tag upstream + the local patches and files as base, in TREE."""
    git('checkout', '-q', '-f', '--detach', 'upstream', cwd=tree)
    add_local(tree)
    git('tag', '-f', 'base', cwd=tree)
    common = git('rev-parse', '--git-common-dir', cwd=tree).strip()
    with open(os.path.join(tree, common, BASE_STAMP), 'w') as f:
        f.write(base_digest() + '\n')


def dirty_upstream_files():
    """Files of build/src that differ from HEAD and are not overlay files."""
    overlay = set(overlay_files() + local_files())
    out = git('status', '--porcelain', '--untracked-files=no')
    return [line[3:] for line in out.splitlines() if line[3:] not in overlay]


def apply_series(tree):
    """Reset tree to base and commit every series entry on top of it."""
    git('checkout', '-q', '-f', '--detach', 'base', cwd=tree)
    for patch, files in read_series():
        res = subprocess.run(['git'] + GIT_ID +
                             ['am', '-q', '--keep-cr', '--committer-date-is-author-date',
                              os.path.join(PATCHES, patch)],
                             cwd=tree, text=True, capture_output=True)
        if res.returncode != 0:
            git('am', '--abort', cwd=tree, check=False)
            raise QueueError('patch %s does not apply:\n%s%s' %
                             (patch, res.stdout, res.stderr))
        if files:
            copy_overlay(tree, files)
            git('add', '-f', '--', *files, cwd=tree)
            git('commit', '-q', '--amend', '--no-edit', '--no-verify',
                cwd=tree)
    return git('rev-parse', 'HEAD', cwd=tree).strip()


def upstream_of_src():
    """The tarball build/src was unpacked from, from its upstream commit."""
    subject = git('log', '-1', '--format=%s', 'upstream', check=False)
    m = re.search(r'\((\S+)\)$', subject.strip())
    return m.group(1) if m else None


def cmd_prepare(args):
    if (os.path.isdir(os.path.join(SRC, '.git')) and
            upstream_of_src() != os.path.basename(args.tarball)):
        dirty = dirty_upstream_files()
        if dirty:
            raise QueueError('build/src has edits that are not in patches/ '
                             'and its upstream is not %s:\n  %s'
                             % (os.path.basename(args.tarball),
                                '\n  '.join(dirty)))
        print('  upstream changed: unpacking %s again'
              % os.path.basename(args.tarball))
        shutil.rmtree(WORKTREE, ignore_errors=True)
        shutil.rmtree(SRC)
    if not os.path.isdir(os.path.join(SRC, '.git')):
        unpack(args.tarball)
    elif os.path.exists(os.path.join(SRC, '.git', STAMP)):
        # Keep overlay edits made in build/src before git moves it.
        reconcile_overlay()
    digest = queue_digest()
    stamp = os.path.join(SRC, '.git', STAMP)
    applied = open(stamp).read().strip() if os.path.exists(stamp) else ''
    if applied != digest:
        dirty = dirty_upstream_files()
        if dirty:
            raise QueueError('build/src has edits that are not in patches/ '
                             '(run "make refresh" first, or revert them):\n  '
                             + '\n  '.join(dirty))
        # Build the new series in a separate worktree, then move build/src
        # to it: git rewrites only the files that differ, so the next
        # build recompiles only what the change touched.
        if not os.path.isdir(WORKTREE):
            git('worktree', 'add', '-q', '--detach', WORKTREE, 'base')
        base_stamp = os.path.join(SRC, '.git', BASE_STAMP)
        built = (open(base_stamp).read().strip()
                 if os.path.exists(base_stamp) else '')
        if built != base_digest():
            print('  local patches or files changed: building base again')
            make_base(WORKTREE)
        head = apply_series(WORKTREE)
        git('checkout', '-q', '-f', '--detach', head)
        with open(stamp, 'w') as f:
            f.write(digest + '\n')
    for name in reconcile_overlay():
        print('  overlay  %s' % name)


def commits():
    out = git('rev-list', '--reverse', 'base..HEAD')
    return out.split()


def cmd_import(args):
    entries = []
    owner = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, rev in enumerate(commits(), 1):
            subject = git('log', '-1', '--format=%s', rev).strip()
            status = git('diff-tree', '--no-commit-id', '-r', '--name-status',
                         '--no-renames', rev)
            edited, added = [], []
            for line in status.splitlines():
                kind, path = line.split('\t', 1)
                in_upstream = subprocess.run(
                    ['git'] + GIT_ID + ['cat-file', '-e', 'base:' + path],
                    cwd=SRC, capture_output=True).returncode == 0
                if in_upstream:
                    edited.append(path)
                elif kind == 'A':
                    added.append(path)
                    owner[path] = subject
                else:
                    raise QueueError(
                        '"%s" changes %s, which "%s" adds: a new file '
                        'belongs to one commit; squash the change into it'
                        % (subject, path, owner.get(path, '?')))
            if not edited:
                raise QueueError('"%s" edits no upstream file (every commit '
                                 'that adds files also updates MAINTAINERS)'
                                 % subject)
            # A fixed --abbrev: blob ids in patches/ must not change with
            # the number of objects in build/src
            out = git('format-patch', '-1', '--zero-commit', '--no-signature',
                      '--abbrev=9', '--start-number', str(index), '-o', tmp,
                      rev, '--',
                      *edited).strip()
            name = os.path.basename(out)
            entries.append((name, added))
        for old in os.listdir(PATCHES):
            if old.endswith('.patch'):
                os.remove(os.path.join(PATCHES, old))
        for name, added in entries:
            shutil.copyfile(os.path.join(tmp, name),
                            os.path.join(PATCHES, name))
            for path in added:
                dst = os.path.join(TOP, path)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with open(dst, 'wb') as f:
                    f.write(subprocess.run(
                        ['git'] + GIT_ID + ['show', 'HEAD:' + path], cwd=SRC,
                        capture_output=True, check=True).stdout)
    write_series(entries)
    with open(os.path.join(SRC, '.git', STAMP), 'w') as f:
        f.write(queue_digest() + '\n')
    for name, added in entries:
        print('  %s (+%d new files)' % (name, len(added)))


def cmd_refresh(args):
    # Overlay edits, made here or in build/src, fold into their commits.
    reconcile_overlay()
    out = git('status', '--porcelain', '--untracked-files=no')
    dirty = [line[3:] for line in out.splitlines()]
    if not dirty and not args.patch:
        print('no edits in build/src')
    for path in dirty:
        if args.patch:
            target = args.patch
        else:
            target = git('log', '-1', '--format=%H', 'base..HEAD', '--',
                         path).strip()
            if not target:
                raise QueueError('%s is not changed by any patch yet: say '
                                 'which one with PATCH=NNNN' % path)
        if re.fullmatch(r'\d{1,4}', target):
            revs = commits()
            target = revs[int(target) - 1]
        git('add', '--', path)
        git('commit', '-q', '--no-verify', '--fixup=' + target)
    if dirty:
        env = dict(os.environ, GIT_SEQUENCE_EDITOR=':')
        git('rebase', '-q', '-i', '--autosquash', '--autostash', 'base',
            env=env)
    cmd_import(args)


# The identity the queue's commits carry; make series signs with the
# poster's own in its place
PLACEHOLDER = 'Driver Status Dev <dev@localhost>'
PLACEHOLDER_NAME = PLACEHOLDER[:PLACEHOLDER.index(' <')]
IDENTITY_HELP = ('make series signs the patches as you: set git config '
                 'user.name and user.email (or SERIES_IDENTITY="Name <email>")')
COVER = os.path.join(PATCHES, 'cover-letter.txt')
FIXES_COVER = os.path.join(PATCHES, 'fixes-cover-letter.txt')
# What changed in each patch since the last version, put under its ---
CHANGES = os.path.join(PATCHES, 'changes.txt')


def poster_identity():
    """The poster's "Name <email>": SERIES_IDENTITY, or git config."""
    ident = os.environ.get('SERIES_IDENTITY', '').strip()
    if not ident:
        def config(key):
            return subprocess.run(['git', 'config', key], cwd=TOP, text=True,
                                  capture_output=True).stdout.strip()
        name, email = config('user.name'), config('user.email')
        if name and email:
            ident = '%s <%s>' % (name, email)
    if not re.fullmatch(r'[^<>@]+ <[^<>@\s]+@[^<>\s]+>', ident):
        raise QueueError(IDENTITY_HELP)
    return ident


def read_changes():
    """{subject: text} from patches/changes.txt: a subject at the start
    of a line, then its lines, indented by four spaces."""
    changes, subject = {}, None
    for line in open(CHANGES):
        line = line.rstrip('\n')
        if line.startswith('#') or not line.strip():
            continue
        if line.startswith('    '):
            if subject is None:
                raise QueueError('%s: text before any subject' % CHANGES)
            changes[subject] += line[4:] + '\n'
        else:
            subject = line.strip()
            changes[subject] = ''
    return changes


def patch_files(folder):
    return sorted(os.path.join(folder, p) for p in os.listdir(folder)
                  if p.endswith('.patch')
                  and not p.endswith('0000-cover-letter.patch'))


def maintainers_to_cc(patches, poster):
    """Cc: lines for the cover letter: get_maintainer.pl on every patch,
    without the poster and the lists"""
    res = subprocess.run(['perl', 'scripts/get_maintainer.pl', '--no-git',
                          '--no-git-fallback', '--no-rolestats', '--no-roles',
                          '--no-l'] + patches,
                         cwd=SRC, text=True, capture_output=True)
    if res.returncode != 0:
        raise QueueError('get_maintainer.pl failed:\n' + res.stderr)
    # The new sections' M: is the queue's identity in build/src
    skip = (poster[poster.index('<'):], PLACEHOLDER[PLACEHOLDER.index('<'):])
    seen = []
    for line in res.stdout.splitlines():
        line = line.strip()
        if line and not any(e in line for e in skip) and line not in seen:
            seen.append(line)
    return ''.join('Cc: %s\n' % who for who in seen)


def write_cover(path, blurb, cc):
    """Fill in the cover letter git format-patch wrote at PATH."""
    subject, body = blurb.split('\n', 1)
    text = open(path).read()
    text = text.replace('*** SUBJECT HERE ***', subject.strip())
    text = re.sub(r'\*\*\* BLURB HERE \*\*\*\n', lambda m: body.strip() + '\n',
                  text)
    # Cc: goes with the headers, before the blank line that ends them
    head, rest = text.split('\n\n', 1)
    with open(path, 'w') as f:
        f.write(head + '\n' + cc + '\n' + rest)


def sign(paths, poster, changes):
    """Put the poster's identity in, and each patch's changes under ---."""
    poster_name = poster[:poster.index(' <')]
    for path in paths:
        text = open(path).read().replace(PLACEHOLDER, poster)
        # the cover letter's shortlog names the author alone
        text = re.sub(r'^%s \((\d+)\):$' % re.escape(PLACEHOLDER_NAME),
                      lambda m: '%s (%s):' % (poster_name, m.group(1)), text,
                      flags=re.M)
        m = re.search(r'^Subject: \[[^]]*\] (.*(?:\n .*)*)', text, re.M)
        subject = m.group(1).replace('\n ', ' ') if m else ''
        note = changes.pop(subject, None)
        if note:
            text = text.replace('\n---\n', '\n---\n' + note + '\n', 1)
        with open(path, 'w') as f:
            f.write(text)


def cmd_export(args):
    poster = poster_identity()
    out = os.path.abspath(args.output)
    fixes_out = os.path.join(out, 'fixes')
    shutil.rmtree(out, ignore_errors=True)
    revs = commits()
    if not 0 <= args.fixes < len(revs):
        raise QueueError('--fixes %d: the queue has %d commits'
                         % (args.fixes, len(revs)))
    fmt = ['format-patch', '-q', '--zero-commit', '--no-signature',
           '--cover-letter', '--cover-from-description=subject']
    split = revs[args.fixes - 1] if args.fixes else 'base'
    if args.fixes:
        git(*fmt, '-o', fixes_out, 'base..' + split)
    git(*fmt, '-v', str(args.version), '-o', out, split + '..HEAD')
    changes = read_changes()

    blurb = open(COVER).read().strip() + '\n'
    if args.fixes:
        fixes = patch_files(fixes_out)
        sign(fixes + [os.path.join(fixes_out, '0000-cover-letter.patch')],
             poster, changes)
        write_cover(os.path.join(fixes_out, '0000-cover-letter.patch'),
                    open(FIXES_COVER).read(),
                    'Cc: qemu-stable@nongnu.org\n'
                    + maintainers_to_cc(fixes, poster))
        subjects = [git('log', '-1', '--format=%s', r).strip()
                    for r in revs[:args.fixes]]
        blurb += ('\n%s\n\n%s' % (textwrap.fill(
            'Based on upstream QEMU v%s and the 11.0 machine types of its '
            'master, with these fixes, posted as a series of their own, '
            'applied first:' % UPSTREAM['QEMU_VERSION'], 72),
            ''.join('  %s\n' % s for s in subjects)))
    main = patch_files(out)
    cover = os.path.join(out, 'v%d-0000-cover-letter.patch' % args.version)
    sign(main + [cover], poster, changes)
    write_cover(cover, blurb, maintainers_to_cc(main, poster))
    if changes:
        raise QueueError('%s names no patch of the series: %s'
                         % (CHANGES, '; '.join(changes)))
    print('wrote %d fixes to %s and %d patches (v%d) to %s, signed by %s'
          % (args.fixes, fixes_out, len(main), args.version, out, poster))


def cmd_verify(args):
    """Apply the exported fixes, then the series, to base with git am."""
    poster = poster_identity()
    tree = os.path.join(BUILD, 'verify')
    if os.path.isdir(tree):
        git('worktree', 'remove', '--force', tree, check=False)
        shutil.rmtree(tree, ignore_errors=True)
    # The series goes on base: its compat properties go in the compat
    # array of the last release, which upstream's master adds and
    # patches/local brings in.
    git('worktree', 'add', '-q', '--detach', tree, 'base')
    series = os.path.abspath(args.series)
    fixes = os.path.join(series, 'fixes')
    patches = (patch_files(fixes) if os.path.isdir(fixes) else []) + \
        patch_files(series)
    res = subprocess.run(['git'] + GIT_ID + ['am', '-q'] + patches,
                         cwd=tree, text=True, capture_output=True)
    if res.returncode != 0:
        raise QueueError('the series does not apply to base:\n'
                         + res.stdout + res.stderr)
    # The tree built has the queue's identity where the poster's is now
    maintainers = os.path.join(tree, 'MAINTAINERS')
    text = open(maintainers).read()
    with open(maintainers, 'w') as f:
        f.write(text.replace(poster, PLACEHOLDER))
    git('add', '-A', cwd=tree)
    mine = git('write-tree', cwd=tree).strip()
    built = git('rev-parse', 'HEAD^{tree}').strip()
    if mine != built:
        diff = git('diff', '--stat', 'HEAD', mine)
        raise QueueError('the series on pristine upstream differs from the '
                         'tree that was built:\n' + diff)
    git('worktree', 'remove', '--force', tree)
    print('%d patches apply to base (upstream %s and patches/local) and '
          'reproduce the built tree' % (len(patches), UPSTREAM['QEMU_VERSION']))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('prepare')
    p.add_argument('--tarball', required=True)
    p.set_defaults(func=cmd_prepare)
    p = sub.add_parser('refresh')
    p.add_argument('--patch', default='')
    p.set_defaults(func=cmd_refresh)
    p = sub.add_parser('import')
    p.set_defaults(func=cmd_import)
    p = sub.add_parser('export')
    p.add_argument('--output', default=os.path.join(BUILD, 'series'))
    p.add_argument('--version', type=int, required=True,
                   help='N of [PATCH vN nn/NN]')
    p.add_argument('--fixes', type=int, default=0,
                   help='the first FIXES commits are a series of their own')
    p.set_defaults(func=cmd_export)
    p = sub.add_parser('verify')
    p.add_argument('--series', default=os.path.join(BUILD, 'series'))
    p.set_defaults(func=cmd_verify)
    args = parser.parse_args()
    try:
        args.func(args)
    except QueueError as e:
        print('queue: %s' % e, file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
