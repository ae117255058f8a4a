from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkerMessage(_message.Message):
    __slots__ = ("hello", "batch", "stats")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    batch: EventBatch
    stats: WorkerStats
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., batch: _Optional[_Union[EventBatch, _Mapping]] = ..., stats: _Optional[_Union[WorkerStats, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("worker_id", "pool", "hostname", "pid", "library_name", "library_version", "protocol_version", "labels")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_NAME_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    pool: str
    hostname: str
    pid: int
    library_name: str
    library_version: str
    protocol_version: int
    labels: _containers.RepeatedCompositeFieldContainer[MetadataEntry]
    def __init__(self, worker_id: _Optional[str] = ..., pool: _Optional[str] = ..., hostname: _Optional[str] = ..., pid: _Optional[int] = ..., library_name: _Optional[str] = ..., library_version: _Optional[str] = ..., protocol_version: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[MetadataEntry, _Mapping]]] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("events", "sequence")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    sequence: int
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., sequence: _Optional[int] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("int_value", "float_value", "string_value")
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    int_value: int
    float_value: float
    string_value: str
    def __init__(self, int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., string_value: _Optional[str] = ...) -> None: ...

class MeasurementEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: Value
    def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class MetadataEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_parts", "measurements", "metadata", "timestamp_ns", "correlation_id", "sample_rate", "name")
    EVENT_PARTS_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    event_parts: _containers.RepeatedScalarFieldContainer[str]
    measurements: _containers.RepeatedCompositeFieldContainer[MeasurementEntry]
    metadata: _containers.RepeatedCompositeFieldContainer[MetadataEntry]
    timestamp_ns: int
    correlation_id: str
    sample_rate: float
    name: str
    def __init__(self, event_parts: _Optional[_Iterable[str]] = ..., measurements: _Optional[_Iterable[_Union[MeasurementEntry, _Mapping]]] = ..., metadata: _Optional[_Iterable[_Union[MetadataEntry, _Mapping]]] = ..., timestamp_ns: _Optional[int] = ..., correlation_id: _Optional[str] = ..., sample_rate: _Optional[float] = ..., name: _Optional[str] = ...) -> None: ...

class WorkerStats(_message.Message):
    __slots__ = ("queue_depth", "queue_capacity", "events_queued", "events_sent", "dropped", "rejected", "reconnects")
    class DroppedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class RejectedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    QUEUE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    EVENTS_QUEUED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_SENT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    RECONNECTS_FIELD_NUMBER: _ClassVar[int]
    queue_depth: int
    queue_capacity: int
    events_queued: int
    events_sent: int
    dropped: _containers.ScalarMap[str, int]
    rejected: _containers.ScalarMap[str, int]
    reconnects: int
    def __init__(self, queue_depth: _Optional[int] = ..., queue_capacity: _Optional[int] = ..., events_queued: _Optional[int] = ..., events_sent: _Optional[int] = ..., dropped: _Optional[_Mapping[str, int]] = ..., rejected: _Optional[_Mapping[str, int]] = ..., reconnects: _Optional[int] = ...) -> None: ...

class ControlMessage(_message.Message):
    __slots__ = ("toggle", "sampling", "filter", "welcome", "policy", "rejects", "go_away")
    TOGGLE_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    REJECTS_FIELD_NUMBER: _ClassVar[int]
    GO_AWAY_FIELD_NUMBER: _ClassVar[int]
    toggle: Toggle
    sampling: SamplingUpdate
    filter: EventFilter
    welcome: Welcome
    policy: Policy
    rejects: RejectNotice
    go_away: GoAway
    def __init__(self, toggle: _Optional[_Union[Toggle, _Mapping]] = ..., sampling: _Optional[_Union[SamplingUpdate, _Mapping]] = ..., filter: _Optional[_Union[EventFilter, _Mapping]] = ..., welcome: _Optional[_Union[Welcome, _Mapping]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., rejects: _Optional[_Union[RejectNotice, _Mapping]] = ..., go_away: _Optional[_Union[GoAway, _Mapping]] = ...) -> None: ...

class Toggle(_message.Message):
    __slots__ = ("enabled",)
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    def __init__(self, enabled: bool = ...) -> None: ...

class SamplingUpdate(_message.Message):
    __slots__ = ("sampling_rate", "event_patterns")
    SAMPLING_RATE_FIELD_NUMBER: _ClassVar[int]
    EVENT_PATTERNS_FIELD_NUMBER: _ClassVar[int]
    sampling_rate: float
    event_patterns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sampling_rate: _Optional[float] = ..., event_patterns: _Optional[_Iterable[str]] = ...) -> None: ...

class EventFilter(_message.Message):
    __slots__ = ("allow", "deny")
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    DENY_FIELD_NUMBER: _ClassVar[int]
    allow: _containers.RepeatedScalarFieldContainer[str]
    deny: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, allow: _Optional[_Iterable[str]] = ..., deny: _Optional[_Iterable[str]] = ...) -> None: ...

class SamplingRule(_message.Message):
    __slots__ = ("pattern", "rate")
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    rate: float
    def __init__(self, pattern: _Optional[str] = ..., rate: _Optional[float] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("enabled", "default_sample_rate", "sampling_rules", "allow", "deny", "version")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_RULES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    DENY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    default_sample_rate: float
    sampling_rules: _containers.RepeatedCompositeFieldContainer[SamplingRule]
    allow: _containers.RepeatedScalarFieldContainer[str]
    deny: _containers.RepeatedScalarFieldContainer[str]
    version: int
    def __init__(self, enabled: bool = ..., default_sample_rate: _Optional[float] = ..., sampling_rules: _Optional[_Iterable[_Union[SamplingRule, _Mapping]]] = ..., allow: _Optional[_Iterable[str]] = ..., deny: _Optional[_Iterable[str]] = ..., version: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("policy", "protocol_version", "host_id", "max_message_bytes", "stats_interval_ms")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STATS_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    protocol_version: int
    host_id: str
    max_message_bytes: int
    stats_interval_ms: int
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ..., protocol_version: _Optional[int] = ..., host_id: _Optional[str] = ..., max_message_bytes: _Optional[int] = ..., stats_interval_ms: _Optional[int] = ...) -> None: ...

class RejectNotice(_message.Message):
    __slots__ = ("rejected", "recent_unknown_names")
    class RejectedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    RECENT_UNKNOWN_NAMES_FIELD_NUMBER: _ClassVar[int]
    rejected: _containers.ScalarMap[str, int]
    recent_unknown_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rejected: _Optional[_Mapping[str, int]] = ..., recent_unknown_names: _Optional[_Iterable[str]] = ...) -> None: ...

class GoAway(_message.Message):
    __slots__ = ("reason", "reconnect_after_ms")
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    reason: str
    reconnect_after_ms: int
    def __init__(self, reason: _Optional[str] = ..., reconnect_after_ms: _Optional[int] = ...) -> None: ...
