"""The podman connection (containers.podman.podman) with pipelining, entering with nsenter.

Molecule's podman driver names the connection ``podman`` for every container; this file, found
first on the scenarios' ``connection_plugins`` path, takes that name. It differs in two points:

- Pipelining: module code is piped to the command's standard input instead of being copied
  into the container, run, and removed, so each task runs one command in the container instead
  of four or five. (The upstream plugin leaves pipelining off because it runs ``podman exec``
  without ``--interactive``, which gives the command no standard input.)
- No ``podman`` per task: a task's command enters the container's namespaces with
  ``nsenter --target PID --all`` (PID: the container's first process), with the environment
  ``podman exec`` would give it, and files go through ``/proc/PID/root``. ``podman exec``
  costs about 0.4 s of a busy 2-core machine's time (podman, conmon and runc), and the
  upstream plugin adds a ``podman mount`` to every task; nsenter costs a few milliseconds.
  The PID and environment come from ``podman inspect``, kept in
  ``$MOLECULE_EPHEMERAL_DIRECTORY/podman-connection/<container>.json`` and trusted only while
  that PID still runs with the same start time (a restarted or recreated container is
  inspected anew).

A command entered this way runs as the container's root with root's full capabilities, as
root over SSH on a real host has them (``podman exec`` gives the container's capabilities).
Rootless, with ``ansible_user`` set, or without nsenter, it is the pipelined ``podman exec``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.utils.display import Display
from ansible_collections.containers.podman.plugins.connection.podman import (
    Connection as PodmanConnection,
)

DOCUMENTATION = """
name: podman
short_description: podman container access with pipelining, entered with nsenter
description:
  - containers.podman.podman with pipelining (module code on standard input); as root, each
    command enters the container with nsenter instead of podman exec.
author: etckit developers
extends_documentation_fragment:
  - connection_pipelining
options:
  remote_addr:
    description: the container's name or id
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_podman_host
  remote_user:
    description: the user inside the container (podman's default when unset)
    vars:
      - name: ansible_user
  podman_extra_args:
    description: extra arguments for podman
    default: ''
    vars:
      - name: ansible_podman_extra_args
    env:
      - name: ANSIBLE_PODMAN_EXTRA_ARGS
  podman_executable:
    description: the podman program
    default: podman
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
"""

display = Display()


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class Connection(PodmanConnection):
    transport = "podman"
    has_pipelining = True

    def _container(self) -> dict | None:
        """{"pid", "start", "env"} of the running container, or None: use podman exec."""
        nsenter = shutil.which("nsenter")
        if os.geteuid() != 0 or self.user or nsenter is None:
            return None
        cache_dir = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
        cache = None
        if cache_dir:
            name = os.path.basename(str(self._container_id))
            cache = os.path.join(cache_dir, "podman-connection", f"{name}.json")
            try:
                with open(cache, encoding="utf-8") as f:
                    found = json.load(f)
                if _start_time(found["pid"]) == found["start"]:
                    return {**found, "nsenter": nsenter}
            except (OSError, ValueError, KeyError, TypeError):
                pass
        rc, out, err = self._podman(
            ["inspect", "--type", "container", "--format",
             "{{json .State.Pid}} {{json .Config.Env}}"])
        if rc != 0:
            raise AnsibleError(f"podman inspect {self._container_id}: {to_native(err).strip()}")
        pid_text, env_text = to_native(out).strip().split(" ", 1)
        pid = json.loads(pid_text)
        start = _start_time(pid) if pid else None
        if start is None:
            raise AnsibleError(f"container {self._container_id} is not running")
        env = dict(item.split("=", 1) for item in json.loads(env_text) or [] if "=" in item)
        found = {"pid": pid, "start": start, "env": env}
        if cache:
            os.makedirs(os.path.dirname(cache), mode=0o700, exist_ok=True)
            partial = f"{cache}.{os.getpid()}"
            with open(partial, "w", encoding="utf-8") as f:
                json.dump(found, f)
            os.replace(partial, cache)
        return {**found, "nsenter": nsenter}

    def _connect(self):
        if not self._connected:
            self._entered = self._container()
            if self._entered is None:
                # podman exec, with the upstream plugin's podman mount for files
                return super()._connect()
            # the upstream put_file and fetch_file prefix this (bytes) to the path
            self._mount_point = to_bytes(f"/proc/{self._entered['pid']}/root")
            self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=False):
        if not self._connected:
            self._connect()
        # ConnectionBase.exec_command only logs; skip the parent's, which drops in_data's stdin.
        args = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        if self._entered is None:
            podman_args = ["exec"]
            if in_data is not None:
                podman_args.append("--interactive")
            if self.user:
                podman_args.extend(("--user", self.user))
            return self._podman(podman_args, args, in_data)
        # -r -w: the container's root and working directory (its first process's)
        argv = [self._entered["nsenter"], "--target", str(self._entered["pid"]), "--all",
                "-r", "-w", *args]
        display.vvv(f"RUN {argv}", host=self._container_id)
        done = subprocess.run(
            [to_bytes(a, errors="surrogate_or_strict") for a in argv],
            input=in_data, stdin=None if in_data is not None else subprocess.DEVNULL,
            capture_output=True, env=self._entered["env"], check=False)
        return done.returncode, done.stdout, done.stderr
