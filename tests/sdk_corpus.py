"""Batches in the shapes mParticle's official SDKs send, for the differential tests.

* ``python_sdk_batches()``: built with the official ``mparticle`` package (a test
  dependency) for every event type, identity type, platform and enumeration value its
  models offer, as ``mparticle.Batch`` objects. ``python_sdk_json(batch)`` serialises one
  the way the SDK sends it (``ApiClient.sanitize_for_serialization`` then ``json.dumps``).
* ``java_sdk_batches()``: dicts in the shape the Java Events SDK
  (github.com/mParticle/mparticle-java-events-sdk, ``src/main/java/com/mparticle/model``)
  sends: its Gson serialises nulls, so every field of a model is present, null unless the
  model initialises it (lists to ``[]``, maps to ``{}``, enums to their defaults). Written
  from the field names and defaults of its model classes; no code of it is copied.
"""

from __future__ import annotations

import json
from typing import Any

import mparticle
from mparticle.api_client import ApiClient
from mparticle.models.user_attribute_change_event import UserAttributeChangeEvent

# The allowed_values of the Python SDK's model setters (mparticle/models/*.py, 0.16.x).
PY_CUSTOM_EVENT_TYPES = ("unknown", "navigation", "location", "search", "transaction", "user_content",
                         "user_preference", "social", "other", "attribution")
PY_PRODUCT_ACTIONS = ("unknown", "add_to_cart", "remove_from_cart", "checkout", "checkout_option", "click",
                      "view_detail", "purchase", "refund", "add_to_wishlist", "remove_from_wish_list")
PY_PROMOTION_ACTIONS = ("unknown", "view", "click")
PY_TRANSITIONS = ("unknown", "application_initialized", "application_exit", "application_background",
                  "application_foreground")
PY_PUSH_MESSAGE_TYPES = ("unknown", "sent", "received", "action")
PY_APPLICATION_STATES = ("unknown", "not_running", "background", "foreground")
PY_PROFILE_EVENT_TYPES = ("unknown", "signup", "login", "logout", "update", "delete")
PY_PLATFORMS = ("Unknown", "iOS", "Android", "web", "tvOS", "roku", "out_of_band", "alexa", "smart_tv",
                "fire_tv", "xbox")
PY_ENVIRONMENTS = ("production", "development")

T0 = 1_764_000_000_000


def python_sdk_json(batch: mparticle.Batch) -> dict[str, Any]:
    """The JSON body the Python SDK sends for ``batch`` (its ``rest.py`` json.dumps this)."""
    return json.loads(json.dumps(ApiClient.sanitize_for_serialization(batch)))


def _py_batch(events: list, **fields: Any) -> mparticle.Batch:
    batch = mparticle.Batch(environment=fields.pop("environment", "development"))
    identities = mparticle.UserIdentities()
    identities.customerid = "cust-1"  # the key the SDK writes (attribute_map), as in its example
    identities.email = "ada@example.com"
    batch.user_identities = identities
    for name, value in fields.items():
        setattr(batch, name, value)
    batch.events = events
    return batch


def _product(n: int) -> mparticle.Product:
    product = mparticle.Product()
    product.id, product.name, product.brand, product.category = f"SKU-{n}", f"Item {n}", "Acme", "Shoes"
    product.price, product.quantity, product.position = 19.5 + n, 2.0, n
    product.custom_attributes = {"colour": "red"}
    return product


def python_sdk_batches() -> dict[str, mparticle.Batch]:
    """Named batches covering every event, identity and enumeration value of the Python SDK."""
    location = mparticle.GeoLocation(latitude=52.52, longitude=13.405, accuracy=10.0)
    batches: dict[str, mparticle.Batch] = {}

    custom = []
    for n, kind in enumerate(PY_CUSTOM_EVENT_TYPES):
        event = mparticle.AppEvent(event_name=f"Tapped {kind}", custom_event_type=kind,
                                   timestamp_unixtime_ms=T0 + n, custom_attributes={"button": "buy"})
        event.source_message_id = f"00000000-0000-4000-8000-{n:012d}"
        event.location = location
        event.custom_flags = {"Google.Category": "Shop"}
        custom.append(event)
    batches["custom_event"] = _py_batch(custom)

    screen = mparticle.ScreenViewEvent(screen_name="Home", timestamp_unixtime_ms=T0)
    screen.activity_type = "main"
    batches["screen_view"] = _py_batch([screen])

    actions = []
    for action in PY_PRODUCT_ACTIONS:
        product_action = mparticle.ProductAction(action, products=[_product(1), _product(2)])
        product_action.transaction_id, product_action.total_amount = "T-1", 42.0
        product_action.tax_amount, product_action.shipping_amount = 4.2, 0.0
        event = mparticle.CommerceEvent(product_action, timestamp_unixtime_ms=T0, currency_code="EUR")
        event.is_non_interactive = False
        actions.append(event)
    batches["commerce_product_action"] = _py_batch(actions)

    promotions = []
    for action in PY_PROMOTION_ACTIONS:
        promotion = mparticle.Promotion()
        promotion.id, promotion.name, promotion.creative, promotion.position = "P-7", "Spring", "banner", "top"
        promotions.append(mparticle.CommerceEvent(
            promotion_action=mparticle.PromotionAction(action=action, promotions=[promotion])))
    batches["commerce_promotion"] = _py_batch(promotions)

    impression = mparticle.ProductImpression(product_impression_list="Search results",
                                             products=[_product(3)])
    batches["commerce_impressions"] = _py_batch(
        [mparticle.CommerceEvent(product_impressions=[impression], screen_name="Search")])

    batches["session"] = _py_batch([
        mparticle.SessionStartEvent(session_id=7, session_uuid="00000000-0000-4000-8000-000000000007",
                                    timestamp_unixtime_ms=T0),
        mparticle.SessionEndEvent(session_id=7, session_duration_ms=60_000, timestamp_unixtime_ms=T0 + 60_000),
    ])
    batches["opt_out"] = _py_batch([mparticle.OptOutEvent(is_opted_out=True)])

    crash = mparticle.CrashReportEvent(class_name="ValueError", severity="error", message="boom",
                                       stack_trace="Traceback ...", exception_handled=False)
    crash.breadcrumbs = [mparticle.BreadcrumbEvent(label="opened cart", session_number=1)]
    batches["crash_report"] = _py_batch([crash])

    batches["application_state_transition"] = _py_batch([
        mparticle.ApplicationStateTransitionEvent(application_transition_type=kind, is_first_run=False,
                                                  is_upgrade=False, successfully_closed=True)
        for kind in PY_TRANSITIONS
    ])

    consent = mparticle.ConsentState()
    consent.gdpr = {"location_collection": mparticle.GDPRConsentState(
        document="privacy_policy_v2", consented=True, timestamp_unixtime_ms=T0, location="dtmgbank.com/signup",
        hardware_id="IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702")}
    consent.ccpa = {"data_sale_opt_out": mparticle.CCPAConsentState(
        document="ccpa_v1", consented=False, timestamp_unixtime_ms=T0, location="web", hardware_id="h-1")}
    batches["consent"] = _py_batch([], consent_state=consent)

    batches["user_attributes"] = _py_batch(
        [UserAttributeChangeEvent(user_attribute_name="tier", new="gold", old="silver",
                                            deleted=False, is_new_attribute=False)],
        user_attributes={"$firstname": "Ada", "tier": "gold", "visits": 3, "vip": True, "tags": ["a", "b"]},
        deleted_user_attributes=["old_tier"],
    )

    for platform in PY_PLATFORMS:
        device = mparticle.DeviceInformation(platform=platform, os_version="14", device_model="Model-1",
                                             locale_language="en", locale_country="GB", is_tablet=False,
                                             att_authorization_status="authorized",
                                             att_timestamp_unixtime_ms=T0, ios_idfv="5864e6b0-0d46-4667-a463-21d9493b6c10")
        application = mparticle.ApplicationInformation(application_name="Shop", application_version="2.1.0",
                                                       install_referrer="store", package="com.example.shop")
        batches[f"device_info_{platform}"] = _py_batch(
            [mparticle.FirstRunEvent(timestamp_unixtime_ms=T0)], device_info=device, application_info=application)

    identities = mparticle.UserIdentities()
    for n, name in enumerate(identities.attribute_map):
        setattr(identities, name, f"id-{n}@example.com" if name == "email" else f"id-{n}")
    every_identity = _py_batch([mparticle.AppEvent(event_name="Identified")])
    every_identity.user_identities = identities
    batches["user_identities"] = every_identity

    push = [mparticle.PushRegistrationEvent(register=True, registration_token="apns-1")]
    for n, kind in enumerate(PY_PUSH_MESSAGE_TYPES):
        push.append(mparticle.PushMessageEvent(
            push_message_token="apns-1", push_message_type=kind, message="Hi", network="apns",
            push_notification_payload='{"aps":{"alert":"Hi"}}', application_state=PY_APPLICATION_STATES[n % 4],
            action_identifier="open"))
    batches["push"] = _py_batch(push)

    batches["network_performance"] = _py_batch([mparticle.NetworkPerformanceEvent(
        http_verb="GET", url="https://api.example.com/cart", time_elapsed=182, bytes_in=2048, bytes_out=120,
        response_code=200)])
    batches["breadcrumb"] = _py_batch([mparticle.BreadcrumbEvent(label="opened cart", session_number=2)])
    batches["profile"] = _py_batch([
        mparticle.ProfileEvent(profile_name="p-2", previous_profile_name="p-1", profile_event_type=kind)
        for kind in PY_PROFILE_EVENT_TYPES
    ])

    batches["batch_fields"] = _py_batch(
        [mparticle.AppEvent(event_name="Context")],
        environment="production", ip="203.0.113.9", schema_version=2, mpid=-8_765_432_109_876_543_210 // 10,
        mp_deviceid="6f9b2a4e-1c3d-4e5f-8a9b-0c1d2e3f4a5b", api_key="us1-key",
        integration_attributes={"1152": {"cart_id": "c-9"}}, source_request_id="py-sdk-0001",
        context=mparticle.BatchContext(data_plan=mparticle.DataPlanContext(plan_id="mobile_plan", plan_version=2)),
    )
    return batches


# ------------------------------------------------------------------------------ Java SDK


def _nulls(*names: str, **given: Any) -> dict[str, Any]:
    """Every field of a Java model: null, except the initialised or given ones."""
    return {**dict.fromkeys(names), **given}


# CommonEventData: every event's data starts with these (custom_attributes is a HashMap).
_JAVA_COMMON = ("timestamp_unixtime_ms", "event_id", "source_message_id", "session_id", "session_uuid",
                "session_start_unixtime_ms", "event_start_unixtime_ms", "location", "device_current_state",
                "is_goal_defined", "lifetime_value_change", "lifetime_value_attribute_name",
                "data_connection_type", "event_num", "view_controller", "is_main_thread", "canonical_name",
                "event_system_notification_info")


def java_event(event_type: str, *fields: str, **given: Any) -> dict[str, Any]:
    """One event as the Java SDK writes it: ``{"data": {...all fields...}, "event_type": ...}``."""
    data = _nulls(*_JAVA_COMMON, *fields, **{"custom_attributes": {}, **given})
    return {"data": data, "event_type": event_type}


def java_batch(events: list[dict], **given: Any) -> dict[str, Any]:
    """A Batch as the Java SDK writes it (model/Batch.java: environment defaults to production)."""
    defaults = {"events": events, "user_attributes": {}, "deleted_user_attributes": [], "environment": "production",
                "api_keys": [], "integration_attributes": {}, "partner_identities": {}}
    return _nulls(
        "source_request_id", "context", "device_info", "application_info", "user_identities", "api_key", "ip",
        "partner_identity", "source_info", "mp_deviceid", "attribution_info", "timestamp_unixtime_ms", "batch_id",
        "mpid", "sdk_version", "consent_state", "job_id", **{**defaults, **given},
    )


def _java_identities(**given: str) -> dict[str, Any]:
    return _nulls("other", "customer_id", "facebook", "twitter", "google", "microsoft", "yahoo", "email", "alias",
                  "facebook_custom_audience_id", "other_id_2", "other_id_3", "other_id_4", "other_id_5",
                  "other_id_6", "other_id_7", "other_id_8", "other_id_9", "other_id_10", "mobile_number",
                  "phone_number_2", "phone_number_3", **given)


def _java_product(n: int) -> dict[str, Any]:
    return _nulls("coupon_code", "added_to_cart_time_ms", "total_product_amount", "variant", "position",
                  id=f"SKU-{n}", name=f"Item {n}", brand="Acme", category="Shoes", price=19.5, quantity=1,
                  custom_attributes={})


def _java_commerce(**given: Any) -> dict[str, Any]:
    # CommerceEventData: productImpressions starts as an empty list, the rest null.
    return java_event("commerce_event", "product_action", "promotion_action", "shopping_cart", "currency_code",
                      "screen_name", "is_non_interactive", "event_name", "custom_event_type",
                      **{"product_impressions": [], "custom_flags": {}, **given})


def _java_product_action(action: str) -> dict[str, Any]:
    return _nulls("checkout_step", "checkout_options", "product_action_list", "product_list_source",
                  "affiliation", "tax_amount", "shipping_amount", "coupon_code",
                  action=action, transaction_id="T-1", total_amount=39.0, products=[_java_product(1)])


def _java_device(platform: str) -> dict[str, Any]:
    return _nulls(
        "brand", "product", "device", "android_uuid", "device_manufacturer", "os_version", "device_model",
        "screen_height", "screen_width", "screen_dpi", "device_country", "locale_language", "locale_country",
        "network_country", "network_carrier", "network_code", "network_mobile_country_code", "timezone_offset",
        "build_identifier", "http_header_user_agent", "ios_advertising_id", "push_token", "cpu_architecture",
        "is_tablet", "push_notification_sound_enabled", "push_notification_vibrate_enabled",
        "radio_access_technology", "supports_telephony", "has_nfc", "bluetooth_enabled", "bluetooth_version",
        "att_timestamp_unixtime_ms", "att_authorization_status", "ios_idfv", "android_advertising_id",
        "build_version_release", "limit_ad_tracking", "amp_id", "is_dst", "roku_advertising_id",
        "roku_publisher_id", "microsoft_advertising_id", "microsoft_publisher_id", "fire_advertising_id",
        platform=platform,
    )


# model/DeviceInformation.java PlatformEnum; desktop and FireTV are the values no document lists.
JAVA_PLATFORMS = ("iOS", "Android", "web", "desktop", "tvOS", "roku", "out_of_band", "smart_tv", "xbox", "FireTV")
JAVA_PRODUCT_ACTIONS = ("add_to_cart", "remove_from_cart", "checkout", "checkout_option", "click", "view_detail",
                        "purchase", "refund", "add_to_wishlist", "remove_from_wish_list")
JAVA_COMMERCE_EVENT_TYPES = ("add_to_cart", "remove_from_cart", "checkout", "checkout_option", "click",
                             "view_detail", "purchase", "refund", "promotion_view", "promotion_click",
                             "add_to_wishlist", "remove_from_wishlist", "impression")
JAVA_CUSTOM_EVENT_TYPES = ("navigation", "location", "search", "transaction", "user_content", "user_preference",
                           "social", "other")
JAVA_IDENTITY_TYPES = ("other", "customer_id", "facebook", "twitter", "google", "microsoft", "yahoo", "email",
                       "alias", "facebook_custom_audience_id", "mobile_number")


def java_sdk_batches() -> dict[str, dict[str, Any]]:
    """Named batches in the Java SDK's wire shape (nulls and empty collections included)."""
    batches: dict[str, dict[str, Any]] = {}
    identities = _java_identities(customer_id="1234", email="example@foo.com", phone_number_2="5515-123-4567")

    # EventsApiTest.uploadPurchaseEvent: a purchase with the Java defaults beside it.
    batches["purchase"] = java_batch(
        [_java_commerce(product_action=_java_product_action("purchase"), currency_code="USD")],
        environment="development", user_identities=identities)
    batches["product_actions"] = java_batch(
        [_java_commerce(product_action=_java_product_action(a), custom_event_type=t)
         for a, t in zip(JAVA_PRODUCT_ACTIONS, JAVA_COMMERCE_EVENT_TYPES)],
        user_identities=identities)
    promotion = _nulls("action", action="view", promotions=[_nulls("id", "name", "creative", "position", id="P-1")])
    batches["promotion"] = java_batch([_java_commerce(promotion_action=promotion, custom_event_type="promotion_view")],
                                      user_identities=identities)
    impressions = [_nulls(product_impression_list="Search", products=[_java_product(2)])]
    batches["impressions"] = java_batch([_java_commerce(product_impressions=impressions, custom_event_type="impression")],
                                        user_identities=identities)

    batches["custom_events"] = java_batch(
        [java_event("custom_event", "event_name", custom_event_type=t, custom_flags={}, event_name=f"Tap {t}")
         for t in JAVA_CUSTOM_EVENT_TYPES],
        user_identities=identities, environment="unknown")
    batches["screen_view"] = java_batch(
        [java_event("screen_view", "activity_type", screen_name="foo screen", custom_flags={})],
        context={"data_plan": {"plan_id": "mobile_data_plan", "plan_version": 2}}, user_identities=identities)
    batches["session"] = java_batch([
        java_event("session_start"),
        java_event("session_end", session_duration_ms=None),
    ], user_identities=identities)
    batches["lifecycle"] = java_batch([
        java_event("application_state_transition", "successfully_closed", "is_first_run", "is_upgrade",
                   "push_notification_payload", "launch_referral", application_transition_type=kind)
        for kind in ("application_initialized", "application_exit", "application_background", "application_foreground")
    ] + [
        java_event("opt_out", is_opted_out=None),
        java_event("crash_report", "class_name", "severity", "message", "stack_trace", "exception_handled",
                   "topmost_context", "pl_crash_report_file_base64", "ios_image_base_address", "ios_image_size",
                   "session_number", breadcrumbs=[]),
        java_event("breadcrumb", "session_number", label="opened cart"),
        java_event("network_performance", "http_verb", "url", "time_elapsed", "bytes_in", "bytes_out",
                   "response_code", "data"),
    ], user_identities=identities)
    batches["push"] = java_batch([
        java_event("push_registration", register=True, registration_token="token-1"),
        java_event("push_message", "push_message_token", "message", "network", "push_notification_payload",
                   "application_state", "action_identifier", "push_message_behavior", push_message_type="received"),
    ], user_identities=identities)
    batches["profile_and_changes"] = java_batch([
        java_event("profile", previous_mpid=1, current_mpid=2, profile_event_type="login"),
        java_event("user_attribute_change", "deleted", "is_new_attribute", user_attribute_name="tier",
                   new="gold", old=None),
        *(java_event("user_identity_change", new=_nulls("created_this_batch", identity_type=kind, identity="x",
                                                         timestamp_unixtime_ms=T0), old=None)
          for kind in JAVA_IDENTITY_TYPES),
    ], user_identities=identities, mpid=8_765_432_109_876_543)

    consent = {"gdpr": {"location_collection": _nulls("regulation", "location", "hardware_id", document="doc",
                                                       consented=True, timestamp_unixtime_ms=T0)},
               "ccpa": {"data_sale_opt_out": _nulls("regulation", "document", "location", "hardware_id",
                                                     consented=False, timestamp_unixtime_ms=T0)}}
    # userAttributes values: String, String[] and List<String> (EventsApiTest).
    batches["user_data"] = java_batch(
        [], user_identities=identities, consent_state=consent,
        user_attributes={"foo": "bar", "foo-array": ["bar1", "bar2"], "foo-array-2": ["bar3", "bar4"]},
        source_info=_nulls("partner", "replay_request_id", "replay_job_id", "is_historical", channel="server_to_server"),
        attribution_info=_nulls(service_provider="sp", publisher="pub", campaign="c"),
        application_info=_nulls("application_name", "application_version", "application_build_number",
                                "install_referrer", "package", os="Unknown", apple_search_ads_attributes={}),
    )
    for platform in JAVA_PLATFORMS:
        batches[f"device_{platform}"] = java_batch(
            [java_event("custom_event", custom_event_type="other", custom_flags={}, event_name="Launch")],
            device_info=_java_device(platform), user_identities=identities)
    return batches
