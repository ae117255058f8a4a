package catalog

import (
	"errors"
	"strconv"
)

// Sentinel errors. Check, CheckMeasurement and SanitizeLabel return a
// *RejectError that unwraps to one of these; test with errors.Is. Every
// reject is permanent: the same input is rejected again, so never retry it.
var (
	// ErrBadName: the event name is empty, too long, or not a dotted
	// lower-case name ([a-z0-9_] segments joined by "."). Drop the event and
	// count it under ReasonBadName; it can never match the catalog.
	ErrBadName = errors.New("bad event name")
	// ErrUnknownEvent: the name is well formed but not in the catalog. Drop
	// and count the event; tell the worker (a typo in an event name), or add
	// the event to the catalog.events config.
	ErrUnknownEvent = errors.New("unknown event")
	// ErrUnknownMeasurement: a measurement key is not declared for the event.
	// The whole event is dropped; declare the key in the catalog or fix the
	// sender.
	ErrUnknownMeasurement = errors.New("unknown measurement")
	// ErrBadValue: a measurement value has the wrong type for its key, or no
	// value at all (an unset oneof); or a plugin's string measurement is not
	// clean (CheckMeasurement). Drop the event or refuse the change; the
	// sender is broken.
	ErrBadValue = errors.New("bad measurement value")
	// ErrNonFinite: a float measurement is NaN or ±Inf. Drop the event; sinks
	// cannot aggregate such values.
	ErrNonFinite = errors.New("non-finite measurement value")
	// ErrTooManyMeasurements: the event has more measurements than
	// catalog.limits.max_measurements. Drop the event.
	ErrTooManyMeasurements = errors.New("too many measurements")
	// ErrBadSampleRate: the event's sample rate is not in (0, 1] (0 from the
	// wire means 1 and is accepted). Drop the event: counting sinks would
	// scale it wrongly.
	ErrBadSampleRate = errors.New("bad sample rate")
	// ErrReservedKey: a plugin tried to set a host-context metadata key
	// (worker_id, pool, hostname, pid, received_ns). Refuse the change; host
	// values always win. (Check removes such keys from worker metadata
	// instead, and reports FixReservedKey.)
	ErrReservedKey = errors.New("reserved host metadata key")
	// ErrKeyTooLong: a plugin's metadata key is longer than
	// catalog.limits.max_key_bytes. Refuse the change. (Check drops such keys
	// from worker metadata and reports FixKeyTooLong.)
	ErrKeyTooLong = errors.New("metadata key too long")
	// ErrBadKey: a plugin's metadata key is empty, not valid UTF-8, or holds
	// control characters. Refuse the change. (Check drops such keys and
	// reports FixBadKey.)
	ErrBadKey = errors.New("bad metadata key")
	// ErrHostEvent: a worker sent one of snakepipe's own events
	// (snakepipe.*), which only the host emits.
	ErrHostEvent = errors.New("event reserved for the host")
)

// Reason says why an event (or a plugin's change) was rejected. Its String
// is a stable snake_case label for metrics and worker reject notices.
type Reason uint8

// The reject reasons. Reasons() lists them all.
const (
	ReasonBadName Reason = iota + 1
	ReasonUnknownEvent
	ReasonUnknownMeasurement
	ReasonBadValueType
	ReasonUnsetValue
	ReasonNonFinite
	ReasonTooManyMeasurements
	ReasonBadSampleRate
	ReasonBadString
	ReasonReservedKey
	ReasonKeyTooLong
	ReasonBadKey
	ReasonHostEvent
	reasonEnd
)

var reasonNames = [reasonEnd]string{
	ReasonBadName:             "bad_name",
	ReasonUnknownEvent:        "unknown_event",
	ReasonUnknownMeasurement:  "unknown_measurement",
	ReasonBadValueType:        "bad_value_type",
	ReasonUnsetValue:          "unset_value",
	ReasonNonFinite:           "non_finite",
	ReasonTooManyMeasurements: "too_many_measurements",
	ReasonBadSampleRate:       "bad_sample_rate",
	ReasonBadString:           "bad_string",
	ReasonReservedKey:         "reserved_key",
	ReasonKeyTooLong:          "key_too_long",
	ReasonBadKey:              "bad_key",
	ReasonHostEvent:           "host_event",
}

var reasonErrs = [reasonEnd]error{
	ReasonBadName:             ErrBadName,
	ReasonUnknownEvent:        ErrUnknownEvent,
	ReasonUnknownMeasurement:  ErrUnknownMeasurement,
	ReasonBadValueType:        ErrBadValue,
	ReasonUnsetValue:          ErrBadValue,
	ReasonNonFinite:           ErrNonFinite,
	ReasonTooManyMeasurements: ErrTooManyMeasurements,
	ReasonBadSampleRate:       ErrBadSampleRate,
	ReasonBadString:           ErrBadValue,
	ReasonReservedKey:         ErrReservedKey,
	ReasonKeyTooLong:          ErrKeyTooLong,
	ReasonBadKey:              ErrBadKey,
	ReasonHostEvent:           ErrHostEvent,
}

// String returns the reason's stable snake_case label ("unknown_event").
func (r Reason) String() string {
	if r > 0 && r < reasonEnd {
		return reasonNames[r]
	}
	return "reason_" + strconv.Itoa(int(r))
}

// Reasons lists every reason in a stable order, so that callers can create
// one counter per reason up front; labels never come from input.
func Reasons() []Reason {
	out := make([]Reason, 0, reasonEnd-1)
	for r := ReasonBadName; r < reasonEnd; r++ {
		out = append(out, r)
	}
	return out
}

// RejectError is the error of a rejected event or plugin change. Event is
// the event name (as received for bad_name and unknown_event — cut to
// max_name_bytes if longer, and possibly not valid UTF-8 for bad_name —
// else the catalog's interned name; "" from SanitizeLabel) and Key the
// offending key, if any. Event and Key may alias the caller's input strings:
// clone them before keeping them beyond the event.
// Both may come from input: Error quotes and shortens them, and callers
// that log or export them must treat them as untrusted.
type RejectError struct {
	Reason Reason
	Event  string
	Key    string
}

// maxErrorField bounds how much of an untrusted name or key Error prints.
const maxErrorField = 64

func quoteField(s string) string {
	if len(s) > maxErrorField {
		return strconv.Quote(s[:maxErrorField]) + "…"
	}
	return strconv.Quote(s)
}

func (e *RejectError) Error() string {
	msg := "catalog: " + e.Reason.String()
	if e.Event != "" {
		msg += ": event " + quoteField(e.Event)
	}
	if e.Key != "" {
		msg += ": key " + quoteField(e.Key)
	}
	if err := e.Unwrap(); err != nil {
		msg += ": " + err.Error()
	}
	return msg
}

// Unwrap returns the sentinel for the reason (ErrBadValue for
// ReasonBadValueType, ReasonUnsetValue and ReasonBadString).
func (e *RejectError) Unwrap() error {
	if e.Reason > 0 && e.Reason < reasonEnd {
		return reasonErrs[e.Reason]
	}
	return nil
}

func reject(r Reason, event, key string) *RejectError {
	return &RejectError{Reason: r, Event: event, Key: key}
}
