"""Development environment: real MySQL 9.7 servers and workloads for tests, the demo and benchmarks.

* ``kingbus.devenv.mysql``: provisions a private MySQL 9.7 tree (no system install) and runs
  throwaway servers and replicas from it.
* ``kingbus.devenv.workload``: deterministic write workloads and benchmark loads.
* ``kingbus.devenv.ports``: free loopback ports.
"""
