"""Time batch validation and serialisation side by side for one 100-event batch.

Run as ``python bench/bench_validation.py``. The batch repeats the event mix of the official
2026 sample batch (from ../shared/reference/specs, next to the repository) or, when that
folder is absent, of a generated batch with the same kinds of events. jsonschema against the
official 2026 schema is timed only when the specs are present, and only a few times (slow).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import timeit
from pathlib import Path

from connector_mparticle import batches

SPECS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "specs"
EVENTS_PER_BATCH = 100
REPEAT = 7


def generated_events() -> list[dict]:
    """Events shaped like the official sample's (SDK-style data with device state)."""
    ts = 1_700_000_000_000
    state = {"time_since_start_ms": 1259, "battery_level": 0.8, "data_connection_type": "wifi",
             "gps_state": False, "total_system_memory_usage_bytes": 31917297664,
             "disk_space_free_bytes": 139796897792, "cpu": "106",
             "application_memory_total_bytes": 140587008, "device_orientation": "portrait"}

    def event(event_type, **fields):
        data = {"timestamp_unixtime_ms": ts,
                "source_message_id": "84e1b361-a282-4adf-8a6d-1d31e6dd5a9e",
                "session_uuid": "84E1B361-A282-4ADF-8A6D-1D31E6DD5A9E", "custom_attributes": None,
                "device_current_state": dict(state), "is_goal_defined": False, "event_num": 0,
                "lifetime_value_change": 0, "canonical_name": None, **fields}
        return {"event_type": event_type, "data": data}

    return [
        event("user_attribute_change", user_attribute_name="tier", new="gold", old=None),
        event("session_start"),
        event("user_identity_change", new={"identity_type": "customer_id", "identity": "123456",
                                           "timestamp_unixtime_ms": ts}, old=None),
        event("application_state_transition", application_transition_type="application_foreground",
              is_first_run=False, is_upgrade=False),
        event("session_end", session_duration_ms=421),
        event("crash_report", severity="error", message="Example error"),
        event("breadcrumb", label="Example breadcrumb", session_number=2),
        event("custom_event", event_name="Example custom event", custom_event_type="other",
              custom_flags={}, custom_attributes={"section": "home", "position": "3"}),
        event("screen_view", screen_name="Example screen", activity_type="activity_started"),
        event("push_registration", register=True, registration_token="foo instance id"),
        event("network_performance", http_verb="GET", url="http://www.example.com",
              response_code=200, time_elapsed=1000, bytes_in=1234, bytes_out=1000),
        event("commerce_event", event_name="eCommerce - Purchase", custom_event_type="purchase",
              product_action={"action": "purchase", "transaction_id": "T-1", "total_amount": 123,
                              "products": [{"id": "SKU", "name": "Product", "price": 123,
                                            "quantity": 1, "custom_attributes": {}}]}),
    ]


def build_batch() -> tuple[dict, str]:
    path = SPECS / "events-batch.sample.2026.json"
    if path.is_file():
        sample = json.loads(path.read_text(encoding="utf-8"))
        source = "official 2026 sample's event mix"
    else:
        sample = {"source_request_id": "769d83cb-8c60-48f9-a0c1-c38cf1b40a4f",
                  "environment": "development", "user_identities": {"customer_id": "123456"},
                  "user_attributes": {"tier": "gold"}, "device_info": {"platform": "iOS"},
                  "ip": "100.38.5.94", "mpid": -7636538281262557000, "events": generated_events()}
        source = "generated event mix (../shared absent)"
    events = sample["events"]
    batch = dict(sample, events=[events[i % len(events)] for i in range(EVENTS_PER_BATCH)])
    # Round-trip so every event is its own object, as in a parsed request body.
    return json.loads(json.dumps(batch)), source


def median_ms(fn, number: int | None = None, repeat: int = REPEAT) -> float:
    timer = timeit.Timer(fn)
    if number is None:
        number, _ = timer.autorange()  # enough calls for >= 0.2 s per measurement
    return statistics.median(timer.repeat(repeat=repeat, number=number)) / number * 1000


def main() -> int:
    started = time.perf_counter()
    batch, source = build_batch()
    faults = batches.check_batch(batch)
    if faults:
        print("check_batch rejects the benchmark batch:", *faults, sep="\n  ")
        return 1
    body = batches.encode(batch)
    print(f"batch: {EVENTS_PER_BATCH} events from the {source}; "
          f"{len(body):,} bytes compact; orjson {'in use' if batches._orjson else 'not installed'}")

    rows = [
        ("check_batch (hand-written)", median_ms(lambda: batches.check_batch(batch))),
        ("json.dumps compact + utf-8", median_ms(lambda: json.dumps(
            batch, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))),
        ("encode()", median_ms(lambda: batches.encode(batch))),
        ("encode() stdlib fallback", median_ms(lambda: batches._encode_stdlib(batch))),
        ("json.loads", median_ms(lambda: json.loads(body))),
        ("decode()", median_ms(lambda: batches.decode(body))),
        ("decode() stdlib fallback", median_ms(lambda: batches._decode_stdlib(body))),
    ]

    schema_path = SPECS / "events-batch.schema.2026.json"
    schema_faults = None
    if schema_path.is_file():
        import jsonschema

        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        validator = jsonschema.Draft7Validator(schema)  # compiled once, as a server would
        schema_faults = list(validator.iter_errors(batch))
        rows.append(("jsonschema Draft7 (2026 schema)",
                     median_ms(lambda: list(validator.iter_errors(batch)), number=1, repeat=3)))

    base = rows[0][1]
    print(f"\n{'approach':34} {'ms/batch':>10} {'x check_batch':>14}")
    print("-" * 60)
    for name, ms in rows:
        print(f"{name:34} {ms:10.4f} {ms / base:14.2f}")
    if schema_faults is not None:
        print(f"\njsonschema reports {len(schema_faults)} fault(s) for this valid batch, e.g.: "
              f"{schema_faults[0].message[:100] if schema_faults else '-'}")
    else:
        print("\njsonschema not timed: ../shared/reference/specs is absent")
    print(f"total run time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
