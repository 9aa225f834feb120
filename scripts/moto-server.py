#!/usr/bin/env python3
"""Starts moto's AWS emulator serving one request at a time.

moto rolls a failed DynamoDB transaction back by restoring a snapshot of the whole table
taken when the transaction began; with the threaded server, that also erases writes other
requests made meanwhile. Real DynamoDB transactions are isolated, so the tests serialise
requests to get the same behaviour.

Usage: moto-server.py HOST PORT
"""
import sys

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

host, port = sys.argv[1], int(sys.argv[2])
run_simple(host, port, DomainDispatcherApplication(create_backend_app), threaded=False, use_reloader=False)
