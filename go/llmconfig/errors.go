package llmconfig

import (
	"fmt"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failed call (or a watch event's error) with its google.rpc details decoded:
// INVALID_ARGUMENT lists the request fields at fault (google.rpc.BadRequest),
// FAILED_PRECONDITION the server inputs at fault (google.rpc.PreconditionFailure), and every
// error of the service carries a google.rpc.ErrorInfo (Reason, Metadata).
type Error struct {
	Code    codes.Code
	Message string
	// Reason is ErrorInfo's: UPPER_SNAKE_CASE, the first violation's for a list of them
	// (OUT_OF_RANGE, API_KEY_MISSING, TOKEN_MISSING, SCOPE_MISSING, …).
	Reason string
	// Metadata is ErrorInfo's (e.g. "scope" and "token" for SCOPE_MISSING).
	Metadata   map[string]string
	Violations []Violation

	status *status.Status
}

// Violation is one thing the server found wrong.
type Violation struct {
	// Subject is the request field path ("overrides.temperature") or the variable, flag or
	// file key a bad server value came from ("ANTHROPIC_API_KEY").
	Subject string
	// Field is the configuration field ("temperature", "api_key", "temporal.address").
	Field string
	// Reason is UPPER_SNAKE_CASE: OUT_OF_RANGE, API_KEY_MISSING, INVALID_URL, …
	Reason string
	// Description says what is wrong and what is allowed, or how to fix it.
	Description string
}

func (e *Error) Error() string {
	return fmt.Sprintf("llmconfig: %s: %s", e.Code, e.Message)
}

// GRPCStatus lets status.Code and status.FromError see the original status through an *Error.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// FromError decodes the error of a call: nil for nil, an *Error for everything else (an error
// that is not a gRPC status becomes codes.Unknown with its text).
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	if decoded, ok := err.(*Error); ok {
		return decoded
	}
	st, _ := status.FromError(err)
	return decode(st)
}

// FromStatus decodes the google.rpc.Status of a WatchLLMConfigEvent's error.
func FromStatus(s *spb.Status) *Error {
	if s == nil {
		return nil
	}
	return decode(status.FromProto(s))
}

// decode reads the violations from BadRequest or PreconditionFailure, and the reason of each
// from ErrorInfo: Debian's genproto (and googleapis before 2023) has no
// BadRequest.FieldViolation.reason, so the server also lists every violation in ErrorInfo's
// metadata: "field"/"subject" for the first (its reason is ErrorInfo's own), then
// "field_N"/"subject_N"/"reason_N" for the N-th, in the same order.
func decode(st *status.Status) *Error {
	e := &Error{Code: st.Code(), Message: st.Message(), status: st}
	if e.Message == "" {
		e.Message = st.Code().String()
	}
	var info *errdetails.ErrorInfo
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.Violations = append(e.Violations, Violation{Subject: v.GetField(), Description: v.GetDescription()})
			}
		case *errdetails.PreconditionFailure:
			for _, v := range d.GetViolations() {
				e.Violations = append(e.Violations, Violation{Subject: v.GetSubject(), Reason: v.GetType(), Description: v.GetDescription()})
			}
		case *errdetails.ErrorInfo:
			info = d
		}
	}
	if info == nil {
		return e
	}
	e.Reason, e.Metadata = info.GetReason(), info.GetMetadata()
	for i := range e.Violations {
		suffix, reason := "", e.Reason
		if i > 0 {
			suffix = "_" + strconv.Itoa(i+1)
			reason = e.Metadata["reason"+suffix]
		}
		if e.Metadata["subject"+suffix] != e.Violations[i].Subject {
			continue // not the list ErrorInfo describes (a server older than its metadata)
		}
		e.Violations[i].Field = e.Metadata["field"+suffix]
		if e.Violations[i].Reason == "" {
			e.Violations[i].Reason = reason
		}
	}
	return e
}
