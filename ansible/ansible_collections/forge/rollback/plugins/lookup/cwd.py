# -*- coding: utf-8 -*-
# Copyright: forge-rollback contributors
# SPDX-License-Identifier: MIT OR Apache-2.0 (as the rest of forge-rollback)
"""forge.rollback.cwd: the folder ansible-playbook runs in."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: cwd
short_description: The folder ansible-playbook was started in, on the controller
description:
  - Returns the controller process's working folder. Relative defaults of the fleet playbook
    (its record folder and report) are placed there. C(lookup('pipe', 'pwd')) is not the same
    - it runs in the playbook's folder.
version_added: "0.1.0"
author:
  - forge-rollback contributors
"""

EXAMPLES = r"""
- ansible.builtin.debug:
    msg: "{{ lookup('forge.rollback.cwd') }}"
"""

RETURN = r"""
_raw:
  description: One element, the absolute path of the controller's working folder.
  type: list
  elements: str
"""

import os

from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return [os.getcwd()]
