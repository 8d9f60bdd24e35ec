#!/usr/bin/env python3
"""pyzk conformance driver for a pull terminal (the punchd simulator or a real device).

Runs the unmodified pyzk library (PyPI `pyzk`, module `zk`) against HOST:PORT over TCP (default) or UDP (`--udp`)
and exercises the calls a pull integration relies on, in this order:

  wrong comm key refused (only when --comm-key is not 0) · connect · device info and options · read_sizes ·
  disable_device · get_users · get_attendance (buffered 1503/1504 path for large logs) · get_templates and
  get_user_template · enable_device · get_time / set_time / get_time · set_user / get_users / delete_user ·
  live_capture (waits for one punch; something else must inject it, see below) · unlock · test_voice ·
  refresh_data · clear_attendance / read_sizes · restart and reconnect · disconnect

Live capture: the driver registers for EF_ATTLOG events and waits up to --live-timeout seconds for one punch.
It cannot inject the punch itself; the Rust integration test (crates/zk-sim/tests/it) watches the simulator for a
registered live client and then adds a punch through `PullSimHandle`. Use --skip-live against a device where
nobody will punch.

Warning: the driver writes and deletes a user (PIN 990001), changes the clock and restores it, restarts the
device and CLEARS THE ATTENDANCE LOG. Never point it at a terminal whose log has not been downloaded.

The last line on stdout is `PYZK_MATRIX_JSON <json>` with counts, first/last records and timings
(pyzk itself prints warnings on stdout, so read only that line). Exit status: 0 when every step passed,
1 when a step failed (the JSON then has "ok": false and "error"), 2 when pyzk is not importable.
"""

import argparse
import datetime as dt
import importlib
import json
import sys
import time
import traceback

ZK = None
ZKErrorResponse = None


def import_library(name):
    """Import pyzk (module `zk`) or a fork with the same API under another module name (e.g. `pyzk2`, which
    tracks pyzk's GitHub master)."""
    global ZK, ZKErrorResponse
    try:
        module = importlib.import_module(name)
        exceptions = importlib.import_module(name + ".exception")
    except ImportError as import_error:  # depends on the machine
        print("%s not importable (pip install pyzk): %s" % (name, import_error), file=sys.stderr)
        sys.exit(2)
    ZK = module.ZK
    ZKErrorResponse = exceptions.ZKErrorResponse

MARKER = "PYZK_MATRIX_JSON "

# A user the driver writes and deletes again. The name fits the 8 bytes of a 28-byte (ZK6) user record and the
# PIN is numeric because ZK6 stores it as a u32.
PROBE_USER_NAME = "Conform"
PROBE_USER_PIN = "990001"
PROBE_USER_CARD = 12345

# set_time target: the vector used in the protocol notes (packed value 803617445).
SET_TIME_TARGET = dt.datetime(2025, 1, 2, 3, 4, 5)


class StepFailed(Exception):
    """A conformance check did not hold."""


def check(condition, message):
    if not condition:
        raise StepFailed(message)


def user_json(user):
    return {
        "uid": user.uid,
        "user_id": user.user_id,
        "name": user.name,
        "privilege": user.privilege,
        "password": user.password,
        "group_id": user.group_id,
        "card": user.card,
    }


def attendance_json(record):
    return {
        "uid": record.uid,
        "user_id": record.user_id,
        "timestamp": record.timestamp.isoformat(),
        "status": record.status,
        "punch": record.punch,
    }


def finger_json(finger):
    return {"uid": finger.uid, "fid": finger.fid, "valid": finger.valid, "size": finger.size}


def first_last(items, to_json):
    return {
        "count": len(items),
        "first": to_json(items[0]) if items else None,
        "last": to_json(items[-1]) if items else None,
    }


class Matrix:
    def __init__(self, args):
        self.args = args
        self.summary = {
            "ok": False,
            "transport": "udp" if args.udp else "tcp",
            "host": args.host,
            "port": args.port,
            "comm_key": args.comm_key,
            "library": args.library,
            "steps": [],
            "timings_ms": {},
        }
        self.zk = None

    def new_zk(self, password):
        return ZK(
            self.args.host,
            port=self.args.port,
            timeout=self.args.timeout,
            password=password,
            force_udp=self.args.udp,
            ommit_ping=True,
        )

    def step(self, name, function):
        started = time.monotonic()
        result = function()
        self.summary["timings_ms"][name] = round((time.monotonic() - started) * 1000, 1)
        self.summary["steps"].append(name)
        return result

    def run(self):
        args = self.args
        if args.comm_key != 0:
            self.step("wrong_comm_key_refused", self.wrong_comm_key_refused)
        self.zk = self.new_zk(args.comm_key)
        conn = self.step("connect", self.zk.connect)
        check(conn is not None and self.zk.is_connect, "connect did not return a connection")
        self.step("device_info", self.device_info)
        self.step("read_sizes", self.read_sizes)
        self.step("disable_device", lambda: check(self.zk.disable_device(), "disable_device failed"))
        self.step("get_users", self.get_users)
        self.step("get_attendance", self.get_attendance)
        self.step("get_templates", self.get_templates)
        self.step("enable_device", lambda: check(self.zk.enable_device(), "enable_device failed"))
        self.step("time", self.time_roundtrip)
        self.step("set_and_delete_user", self.set_and_delete_user)
        if not args.skip_live:
            self.step("live_capture", self.live_capture)
        self.step("unlock", lambda: check(self.zk.unlock(3), "unlock failed"))
        self.step("test_voice", lambda: check(self.zk.test_voice(0), "test_voice failed"))
        self.step("refresh_data", lambda: check(self.zk.refresh_data(), "refresh_data failed"))
        self.step("clear_attendance", self.clear_attendance)
        if not args.skip_restart:
            self.step("restart_and_reconnect", self.restart_and_reconnect)
        self.step("disconnect", lambda: check(self.zk.disconnect(), "disconnect failed"))
        self.summary["ok"] = True

    def wrong_comm_key_refused(self):
        refused = []
        for wrong_key in sorted({0, self.args.comm_key + 1}):
            zk = self.new_zk(wrong_key)
            try:
                zk.connect()
            except ZKErrorResponse as error:
                check("Unauthenticated" in str(error), "wrong key %d: unexpected error %r" % (wrong_key, error))
                refused.append(wrong_key)
                continue
            raise StepFailed("connect with wrong comm key %d succeeded" % wrong_key)
        self.summary["wrong_keys_refused"] = refused

    def device_info(self):
        zk = self.zk
        info = {
            "firmware_version": zk.get_firmware_version(),
            "serial_number": zk.get_serialnumber(),
            "platform": zk.get_platform(),
            "device_name": zk.get_device_name(),
            "mac": zk.get_mac(),
            "fp_version": zk.get_fp_version(),
            "face_version": zk.get_face_version(),
            "extend_fmt": zk.get_extend_fmt(),
            "user_extend_fmt": zk.get_user_extend_fmt(),
            "face_fun_on": zk.get_face_fun_on(),
            "compat_old_firmware": zk.get_compat_old_firmware(),
            "network": zk.get_network_params(),
            "pin_width": zk.get_pin_width(),
        }
        check(info["serial_number"], "empty serial number")
        check(info["firmware_version"], "empty firmware version")
        self.summary["info"] = info

    def read_sizes(self):
        zk = self.zk
        check(zk.read_sizes(), "read_sizes failed")
        self.summary["sizes"] = {
            "users": zk.users,
            "fingers": zk.fingers,
            "records": zk.records,
            "users_cap": zk.users_cap,
            "fingers_cap": zk.fingers_cap,
            "rec_cap": zk.rec_cap,
            "users_av": zk.users_av,
            "fingers_av": zk.fingers_av,
            "rec_av": zk.rec_av,
            "faces": zk.faces,
            "faces_cap": zk.faces_cap,
        }

    def get_users(self):
        users = self.zk.get_users()
        check(len(users) == self.zk.users, "get_users: %d users, read_sizes said %d" % (len(users), self.zk.users))
        self.summary["users"] = first_last(users, user_json)
        self.summary["users"]["record_size"] = self.zk.user_packet_size

    def get_attendance(self):
        records = self.zk.get_attendance()
        check(
            len(records) == self.zk.records,
            "get_attendance: %d records, read_sizes said %d" % (len(records), self.zk.records),
        )
        self.summary["attendance"] = first_last(records, attendance_json)

    def get_templates(self):
        templates = self.zk.get_templates()
        check(
            len(templates) == self.zk.fingers,
            "get_templates: %d templates, read_sizes said %d" % (len(templates), self.zk.fingers),
        )
        self.summary["templates"] = first_last(templates, finger_json)
        if templates:
            # The single-template read (undocumented command 88) must return the same blob.
            first = templates[0]
            single = self.zk.get_user_template(uid=first.uid, temp_id=first.fid)
            check(single is not None, "get_user_template(%d, %d) returned nothing" % (first.uid, first.fid))
            check(single.template == first.template, "get_user_template: blob differs from get_templates")
            self.summary["templates"]["single_read_size"] = single.size

    def time_roundtrip(self):
        zk = self.zk
        before = zk.get_time()
        check(zk.set_time(SET_TIME_TARGET), "set_time failed")
        after = zk.get_time()
        drift = abs((after - SET_TIME_TARGET).total_seconds())
        check(drift <= 2, "get_time after set_time: %s, expected %s" % (after, SET_TIME_TARGET))
        # Put the clock back where it was so later punches are stamped near "now".
        check(zk.set_time(before), "set_time (restore) failed")
        restored = zk.get_time()
        check(abs((restored - before).total_seconds()) <= 2, "restore: %s, expected %s" % (restored, before))
        self.summary["time"] = {
            "before": before.isoformat(),
            "set_to": SET_TIME_TARGET.isoformat(),
            "after_set": after.isoformat(),
            "restored": restored.isoformat(),
        }

    def set_and_delete_user(self):
        zk = self.zk
        users = zk.get_users()
        uid = max([u.uid for u in users] + [0]) + 1
        zk.set_user(uid=uid, name=PROBE_USER_NAME, privilege=0, password="", group_id="", user_id=PROBE_USER_PIN,
                    card=PROBE_USER_CARD)
        after_set = zk.get_users()
        written = [u for u in after_set if u.uid == uid]
        check(len(written) == 1, "set_user: uid %d not found after writing it" % uid)
        check(written[0].user_id == PROBE_USER_PIN, "set_user: PIN %r read back" % written[0].user_id)
        check(written[0].name == PROBE_USER_NAME, "set_user: name %r read back" % written[0].name)
        check(written[0].card == PROBE_USER_CARD, "set_user: card %r read back" % written[0].card)
        check(len(after_set) == len(users) + 1, "set_user: %d users after, %d before" % (len(after_set), len(users)))
        zk.delete_user(uid=uid)
        after_delete = zk.get_users()
        check(all(u.uid != uid for u in after_delete), "delete_user: uid %d still there" % uid)
        check(len(after_delete) == len(users), "delete_user: %d users, expected %d" % (len(after_delete), len(users)))
        # Deleting a user that does not exist must fail (the device answers CMD_ACK_ERROR).
        try:
            zk.delete_user(uid=uid)
            missing_refused = False
        except ZKErrorResponse:
            missing_refused = True
        check(missing_refused, "delete_user of a missing uid %d succeeded" % uid)
        self.summary["set_user"] = {
            "uid": uid,
            "written": user_json(written[0]),
            "count_before": len(users),
            "count_after_set": len(after_set),
            "count_after_delete": len(after_delete),
        }

    def live_capture(self):
        zk = self.zk
        events = []
        waited = 0
        # Tell whoever injects punches that the driver is about to register (informational; the Rust test watches
        # the simulator's live-subscriber count instead of this line).
        print("PYZK_MATRIX_LIVE_WAITING", flush=True)
        for event in zk.live_capture(new_timeout=1):
            if event is None:
                waited += 1
                if waited >= self.args.live_timeout:
                    zk.end_live_capture = True
                continue
            events.append(event)
            if len(events) >= self.args.live_events:
                zk.end_live_capture = True
        check(len(events) >= self.args.live_events,
              "live_capture: %d events after %d s" % (len(events), self.args.live_timeout))
        self.summary["live"] = {"count": len(events), "events": [attendance_json(e) for e in events]}

    def clear_attendance(self):
        zk = self.zk
        check(zk.clear_attendance(), "clear_attendance failed")
        check(zk.read_sizes(), "read_sizes failed")
        check(zk.records == 0, "clear_attendance: read_sizes still says %d records" % zk.records)
        records = zk.get_attendance()
        check(records == [], "clear_attendance: get_attendance returned %d records" % len(records))
        self.summary["records_after_clear"] = zk.records

    def restart_and_reconnect(self):
        check(self.zk.restart(), "restart failed")
        self.zk = self.new_zk(self.args.comm_key)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.zk.connect()
                break
            except Exception:  # the device may refuse connections while it "reboots"
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        check(self.zk.read_sizes(), "read_sizes after restart failed")
        self.summary["after_restart"] = {"users": self.zk.users, "records": self.zk.records}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4370)
    parser.add_argument("--comm-key", type=int, default=0, help="device comm key (0 = none)")
    parser.add_argument("--udp", action="store_true", help="use UDP (pyzk force_udp) instead of TCP")
    parser.add_argument("--timeout", type=int, default=20, help="pyzk socket timeout in seconds")
    parser.add_argument("--live-timeout", type=int, default=20, help="seconds to wait for live punches")
    parser.add_argument("--live-events", type=int, default=1, help="live punches to wait for")
    parser.add_argument("--skip-live", action="store_true", help="do not run live_capture")
    parser.add_argument("--skip-restart", action="store_true", help="do not restart the device")
    parser.add_argument("--library", default="zk", help="module to import: zk (pyzk 0.9) or a fork such as pyzk2")
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    import_library(args.library)
    matrix = Matrix(args)
    code = 0
    try:
        matrix.run()
    except Exception as error:  # report every failure in the JSON, then exit non-zero
        matrix.summary["ok"] = False
        matrix.summary["error"] = "%s: %s" % (type(error).__name__, error)
        matrix.summary["traceback"] = traceback.format_exc()
        code = 1
    print(MARKER + json.dumps(matrix.summary, sort_keys=True), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
