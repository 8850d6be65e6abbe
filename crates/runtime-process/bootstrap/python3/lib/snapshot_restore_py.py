"""Runtime hooks for functions started from a snapshot (`snapshot = true`).

The same names as the module AWS Lambda provides for SnapStart, so code
written for it runs unchanged:

    from snapshot_restore_py import register_before_snapshot, register_after_restore

    @register_after_restore
    def reconnect():
        ...

Hooks registered before the snapshot run once, in the template, after the
function's init and before the first instance is forked from it; hooks
registered after restore run in every instance forked from it, before its
first invocation. A hook that raises fails the start as an init error.
Either may be used as a decorator or called as `register_…(func, *args,
**kwargs)`.
"""

_before_snapshot = []
_after_restore = []


def register_before_snapshot(func, *args, **kwargs):
    _before_snapshot.append((func, args, kwargs))
    return func


def register_after_restore(func, *args, **kwargs):
    _after_restore.append((func, args, kwargs))
    return func


def get_before_snapshot():
    return list(_before_snapshot)


def get_after_restore():
    return list(_after_restore)
