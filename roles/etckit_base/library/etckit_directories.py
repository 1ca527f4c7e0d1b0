#!/usr/bin/python3
"""Ansible module: several directories, each with its owner, group and mode, in one task.

ansible.builtin.file in a loop runs once per directory and host (about 0.2 s each through a
connection); this runs once per host. It creates what is missing (parents too, root's 0755),
and sets owner, group and mode where they differ; it never removes anything.
"""

from __future__ import annotations

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: etckit_directories
short_description: Ensure several directories with owner, group and mode, in one module run
description:
  - Creates each missing directory (missing parents as root 0755) and sets its owner, group
    and mode where they differ. Supports check mode. Used by etckit_base instead of a loop of
    ansible.builtin.file, which costs one module run per directory and host.
options:
  directories:
    description: The directories, in order (a parent before its children).
    type: list
    elements: dict
    required: true
    suboptions:
      path: {description: Absolute path., type: str, required: true}
      owner: {description: User name., type: str, default: root}
      group: {description: Group name., type: str, default: root}
      mode: {description: Octal mode as a string, e.g. "0750"., type: str, required: true}
"""

RETURN = r"""
changed_paths:
  description: The directories created or changed (owner, group or mode).
  type: list
  elements: str
  returned: always
"""


def _wanted(module: AnsibleModule, entry: dict) -> tuple[str, int, int, int]:
    path = entry["path"]
    if not os.path.isabs(path):
        module.fail_json(msg=f"directories: path {path!r} is not absolute")
    try:
        mode = int(entry["mode"], 8)
    except (TypeError, ValueError):
        module.fail_json(msg=f"directories: {path}: mode {entry['mode']!r} is not octal")
    try:
        uid = pwd.getpwnam(entry["owner"]).pw_uid
        gid = grp.getgrnam(entry["group"]).gr_gid
    except KeyError as exc:
        module.fail_json(msg=f"directories: {path}: no such user or group {exc}")
    return path, uid, gid, mode


def _ensure(path: str, uid: int, gid: int, mode: int, check: bool) -> bool:
    """True when PATH was (or, in check mode, would be) created or changed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not check:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            os.mkdir(path, mode)
            os.chown(path, uid, gid)
            os.chmod(path, mode)  # mkdir's mode is cut by the umask
        return True
    if not os.path.isdir(path) or os.path.islink(path):
        raise NotADirectoryError(path)
    changed = (st.st_uid, st.st_gid) != (uid, gid) or (st.st_mode & 0o7777) != mode
    if changed and not check:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return changed


def main() -> None:
    module = AnsibleModule(
        argument_spec={"directories": {"type": "list", "elements": "dict", "required": True,
                                       "options": {"path": {"type": "str", "required": True},
                                                   "owner": {"type": "str", "default": "root"},
                                                   "group": {"type": "str", "default": "root"},
                                                   "mode": {"type": "str", "required": True}}}},
        supports_check_mode=True)
    changed_paths = []
    for entry in module.params["directories"]:
        path, uid, gid, mode = _wanted(module, entry)
        try:
            if _ensure(path, uid, gid, mode, module.check_mode):
                changed_paths.append(path)
        except NotADirectoryError:
            module.fail_json(msg=f"directories: {path} exists and is not a directory")
        except OSError as exc:
            module.fail_json(msg=f"directories: {path}: {exc.strerror}")
    module.exit_json(changed=bool(changed_paths), changed_paths=changed_paths)


if __name__ == "__main__":
    main()
