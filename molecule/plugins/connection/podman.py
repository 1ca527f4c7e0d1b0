"""The podman connection (containers.podman.podman) with pipelining.

Molecule's podman driver names the connection ``podman`` for every container; this file, found
first on the scenarios' ``connection_plugins`` path, takes that name. It differs in one point:
module code is piped to ``podman exec --interactive`` instead of being copied into the
container, run, and removed, so each task costs one ``podman exec`` instead of four or five.
The upstream plugin leaves pipelining off because it runs ``podman exec`` without
``--interactive``, which gives the command no standard input.
"""

from __future__ import annotations

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible_collections.containers.podman.plugins.connection.podman import (
    Connection as PodmanConnection,
)

DOCUMENTATION = """
name: podman
short_description: podman exec into a container, with pipelining
description:
  - containers.podman.podman with pipelining (module code on standard input).
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


class Connection(PodmanConnection):
    transport = "podman"
    has_pipelining = True

    def exec_command(self, cmd, in_data=None, sudoable=False):
        if not self._connected:
            self._connect()
        # ConnectionBase.exec_command only logs; skip the parent's, which drops in_data's stdin.
        args = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        podman_args = ["exec"]
        if in_data is not None:
            podman_args.append("--interactive")
        if self.user:
            podman_args.extend(("--user", self.user))
        return self._podman(podman_args, args, in_data)
