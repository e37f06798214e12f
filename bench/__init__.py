"""Benchmark harness for the gateway (issue 11): `python -m bench --help`.

Everything runs on 127.0.0.1 in processes this package starts and stops itself: a private
redis-server, the gateway or a reference server, and the load clients. Peers' packages live in
`bench/.venv` (made on first use from `bench/requirements.txt`); nothing here ships.
"""
