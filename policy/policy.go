// Package policy evaluates IAM-style JSON policies — the bucket policies
// and endpoint policies of the object store — against a request: who it
// came through (aws:SourceVpce, aws:SourceVpc) and from where
// (aws:SourceIp, aws:VpcSourceIp). An explicit Deny wins over any Allow; no matching Allow
// is an implicit deny, as in IAM.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("policy: invalid policy")

// Condition keys this evaluator knows. Keys are case-insensitive, as in IAM.
const (
	KeySourceVpce  = "aws:sourcevpce"
	KeySourceVpc   = "aws:sourcevpc"
	KeySourceIP    = "aws:sourceip"
	KeyVpcSourceIP = "aws:vpcsourceip"
)

// Decision is the outcome of evaluating a request.
type Decision uint8

const (
	// ImplicitDeny: no statement allows the request.
	ImplicitDeny Decision = iota
	// Allow: a statement allows it and none denies it.
	Allow
	// ExplicitDeny: a statement denies it; nothing overrides that.
	ExplicitDeny
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case ExplicitDeny:
		return "explicit-deny"
	}
	return "implicit-deny"
}

// Request is what a policy is evaluated against.
type Request struct {
	Action   string // "s3:GetObject"
	Resource string // "arn:aws:s3:::bucket/key"
	// SourceVpce and SourceVpc are the endpoint and VPC the request came
	// through; both "" when it did not come through an endpoint.
	SourceVpce string
	SourceVpc  string
	// SourceIP is the public address the request came from — the
	// Elastic IP over the internet — and VpcSourceIP the instance's
	// private address through an endpoint. As on AWS, a request through
	// an endpoint has no aws:SourceIp, and one over the internet no
	// aws:VpcSourceIp.
	SourceIP    netip.Addr
	VpcSourceIP netip.Addr
}

// Policy is a parsed, validated policy document. It is immutable and
// safe for concurrent use.
type Policy struct {
	statements []statement
}

type effect uint8

const (
	effAllow effect = iota + 1
	effDeny
)

type statement struct {
	sid        string
	effect     effect
	actions    []string // lower case patterns
	notActions []string
	resources  []string
	conditions []condition
}

type operator uint8

const (
	opStringEquals operator = iota + 1
	opStringNotEquals
	opStringLike
	opStringNotLike
	opIPAddress
	opNotIPAddress
)

var operators = map[string]operator{
	"stringequals":    opStringEquals,
	"stringnotequals": opStringNotEquals,
	"stringlike":      opStringLike,
	"stringnotlike":   opStringNotLike,
	"ipaddress":       opIPAddress,
	"notipaddress":    opNotIPAddress,
}

type condition struct {
	op       operator
	key      string // lower case
	values   []string
	prefixes []netip.Prefix // for the IP operators
}

// maxPattern bounds one pattern (Action, Resource, condition value): with
// keys bounded too (1024 bytes, the store refuses longer ones), matching
// stays cheap — Match is O(len(pattern)·len(value)) at worst.
const maxPattern = 1200

// maxSize bounds a policy document, as S3 does for bucket policies (20 KiB).
const maxSize = 20 << 10

// FullAccess is the default endpoint policy: everything, by anyone.
const FullAccess = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}`

var fullAccess, _ = Parse([]byte(FullAccess))

// FullAccessPolicy is FullAccess parsed: what an endpoint without a
// policy of its own is given, explicitly (a nil policy is no answer).
func FullAccessPolicy() *Policy { return fullAccess }

// Parse reads and validates a policy document. Errors say which statement
// and field is wrong.
func Parse(doc []byte) (*Policy, error) {
	if len(doc) > maxSize {
		return nil, invalidf("the policy is %d bytes; at most %d are allowed", len(doc), maxSize)
	}
	// Strict: a field, operator or key this evaluator does not understand
	// must not be skipped — skipping a misspelt "Conditions" would turn a
	// conditional Allow into an unconditional one.
	if err := strictJSON(doc); err != nil {
		return nil, invalidf("not a JSON policy document: %v", err)
	}
	var raw struct {
		Version   string
		Id        string
		Statement json.RawMessage
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, invalidf("not a JSON policy document (fields: Version, Id, Statement): %v", err)
	}
	if raw.Version != "" && raw.Version != "2012-10-17" && raw.Version != "2008-10-17" {
		return nil, invalidf(`Version %q is unknown; use "2012-10-17"`, raw.Version)
	}
	var stmts []json.RawMessage
	if err := oneOrMany(raw.Statement, &stmts); err != nil || len(stmts) == 0 {
		return nil, invalidf("the policy needs a Statement: an object or a list of objects")
	}
	p := &Policy{}
	for i, r := range stmts {
		s, err := parseStatement(r)
		if err != nil {
			return nil, fmt.Errorf("%w: statement %d: %v", ErrInvalid, i+1, err)
		}
		p.statements = append(p.statements, s)
	}
	return p, nil
}

type rawStatement struct {
	Sid       string
	Effect    string
	Principal json.RawMessage
	Action    json.RawMessage
	NotAction json.RawMessage
	Resource  json.RawMessage
	Condition json.RawMessage
	// Refused with a clear error: the store has no identities, and
	// NotResource is not implemented.
	NotPrincipal json.RawMessage
	NotResource  json.RawMessage
}

func parseStatement(b json.RawMessage) (statement, error) {
	var r rawStatement
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return statement{}, fmt.Errorf("not a statement object (fields: Sid, Effect, Principal, Action, NotAction, Resource, Condition): %v", err)
	}
	if r.NotPrincipal != nil {
		return statement{}, fmt.Errorf(`NotPrincipal is not supported: the store has no identities; use "Principal": "*" and a Condition`)
	}
	if r.NotResource != nil {
		return statement{}, fmt.Errorf(`NotResource is not supported; list the resources in Resource (patterns with * allowed)`)
	}
	s := statement{sid: r.Sid}
	switch r.Effect {
	case "Allow":
		s.effect = effAllow
	case "Deny":
		s.effect = effDeny
	default:
		return s, fmt.Errorf(`Effect %q: use "Allow" or "Deny"`, r.Effect)
	}
	if err := checkPrincipal(r.Principal); err != nil {
		return s, err
	}
	var err error
	if s.actions, err = patterns(r.Action, "Action"); err != nil {
		return s, err
	}
	if s.notActions, err = patterns(r.NotAction, "NotAction"); err != nil {
		return s, err
	}
	if (s.actions == nil) == (s.notActions == nil) {
		return s, fmt.Errorf(`give exactly one of Action and NotAction (for example "Action": "s3:GetObject")`)
	}
	if s.resources, err = patterns(r.Resource, "Resource"); err != nil {
		return s, err
	}
	if s.resources == nil {
		return s, fmt.Errorf(`Resource is missing (for example "Resource": "arn:aws:s3:::bucket/*")`)
	}
	if r.Condition != nil {
		var conds map[string]map[string]json.RawMessage
		if err := json.Unmarshal(r.Condition, &conds); err != nil || conds == nil || len(conds) == 0 {
			return s, fmt.Errorf(`Condition must be an object of operators, each with keys, for example {"StringEquals": {"aws:SourceVpce": "vpce-…"}}; leave Condition out for none`)
		}
		for opName, keys := range conds {
			op, ok := operators[strings.ToLower(opName)]
			if !ok {
				return s, fmt.Errorf("condition operator %q is not supported; use StringEquals, StringNotEquals, StringLike, StringNotLike, IpAddress or NotIpAddress", opName)
			}
			if len(keys) == 0 {
				return s, fmt.Errorf("condition operator %s has no keys: give at least one, for example {\"aws:SourceVpce\": \"vpce-…\"}", opName)
			}
			for key, vals := range keys {
				c, err := parseCondition(op, opName, key, vals)
				if err != nil {
					return s, err
				}
				s.conditions = append(s.conditions, c)
			}
		}
	}
	return s, nil
}

// checkPrincipal accepts only everyone: the store has no identities, so a
// policy naming an account would silently mean something else.
func checkPrincipal(b json.RawMessage) error {
	if len(b) == 0 {
		return nil // endpoint policies may leave it out
	}
	var s string
	if json.Unmarshal(b, &s) == nil && s == "*" {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) == nil && len(m) == 1 {
		var vals []string
		if err := oneOrMany(m["AWS"], &vals); err == nil && len(vals) == 1 && vals[0] == "*" {
			return nil
		}
	}
	return fmt.Errorf(`Principal %s: only "*" (everyone) is supported; restrict with Condition instead`, string(b))
}

func parseCondition(op operator, opName, key string, b json.RawMessage) (condition, error) {
	c := condition{op: op, key: strings.ToLower(key)}
	switch c.key {
	case KeySourceVpce, KeySourceVpc, KeySourceIP, KeyVpcSourceIP:
	default:
		return c, fmt.Errorf("condition key %q is not supported; use aws:SourceVpce, aws:SourceVpc, aws:SourceIp or aws:VpcSourceIp", key)
	}
	if err := oneOrMany(b, &c.values); err != nil || len(c.values) == 0 {
		return c, fmt.Errorf("%s %s: give a string or a list of strings", opName, key)
	}
	ipOp := op == opIPAddress || op == opNotIPAddress
	if ipOp != (c.key == KeySourceIP || c.key == KeyVpcSourceIP) {
		return c, fmt.Errorf("%s does not apply to %s: IpAddress and NotIpAddress go with aws:SourceIp and aws:VpcSourceIp, the String operators with the others", opName, key)
	}
	if ipOp {
		for _, v := range c.values {
			p, err := parsePrefix(v)
			if err != nil {
				return c, fmt.Errorf("%s %s: %q is not an IPv4 address or CIDR", opName, key, v)
			}
			c.prefixes = append(c.prefixes, p)
		}
	}
	return c, nil
}

func parsePrefix(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func patterns(b json.RawMessage, field string) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var vals []string
	if err := oneOrMany(b, &vals); err != nil || len(vals) == 0 {
		return nil, fmt.Errorf("%s: give a string or a list of strings", field)
	}
	for i, v := range vals {
		if v == "" {
			return nil, fmt.Errorf("%s: an empty pattern matches nothing; remove it", field)
		}
		if len(v) > maxPattern {
			return nil, fmt.Errorf("%s: a pattern of %d bytes; at most %d are allowed (an S3 ARN with a 1024-byte key fits)", field, len(v), maxPattern)
		}
		if field != "Resource" {
			vals[i] = strings.ToLower(v) // actions are case-insensitive
		}
	}
	return vals, nil
}

// oneOrMany decodes a JSON value that may be one T or a list of them, as
// IAM allows for Statement, Action, Resource and condition values.
func oneOrMany[T any](b json.RawMessage, out *[]T) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errors.New("missing")
	}
	if bytes.Equal(b, []byte("null")) || b[0] == '[' && hasNull(b) {
		return errors.New("null is not a value here")
	}
	if b[0] == '[' {
		return json.Unmarshal(b, out)
	}
	var one T
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*out = []T{one}
	return nil
}

// hasNull reports whether the JSON list b has a null element.
func hasNull(b []byte) bool {
	var elems []json.RawMessage
	if json.Unmarshal(b, &elems) != nil {
		return false
	}
	for _, e := range elems {
		if bytes.Equal(bytes.TrimSpace(e), []byte("null")) {
			return true
		}
	}
	return false
}

// strictJSON checks that doc is exactly one JSON value, with nothing
// after it, in which no object has the same key twice (compared without
// case, as encoding/json and IAM match them): with a duplicate "Effect",
// which one counts would be the parser's choice, not the author's.
func strictJSON(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := walkJSON(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("there is more after the policy document; remove it")
	}
	return nil
}

func walkJSON(dec *json.Decoder, depth int) error {
	if depth > 32 {
		return errors.New("nested too deeply")
	}
	t, err := dec.Token()
	if err != nil {
		return err
	}
	switch t {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key := strings.ToLower(k.(string))
			if seen[key] {
				return fmt.Errorf("the key %q appears twice in one object; keep one", k)
			}
			seen[key] = true
			if err := walkJSON(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // }
		return err
	case json.Delim('['):
		for dec.More() {
			if err := walkJSON(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ]
		return err
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Evaluate decides r: an explicit Deny in any matching statement wins;
// otherwise a matching Allow allows; otherwise the request is implicitly
// denied. A nil policy allows everything (no policy set).
func (p *Policy) Evaluate(r *Request) Decision {
	if p == nil {
		return Allow
	}
	d := ImplicitDeny
	for i := range p.statements {
		s := &p.statements[i]
		if !s.matches(r) {
			continue
		}
		if s.effect == effDeny {
			return ExplicitDeny
		}
		d = Allow
	}
	return d
}

func (s *statement) matches(r *Request) bool {
	action := strings.ToLower(r.Action)
	if s.actions != nil && !anyMatch(s.actions, action) {
		return false
	}
	if s.notActions != nil && anyMatch(s.notActions, action) {
		return false
	}
	if !anyMatch(s.resources, r.Resource) {
		return false
	}
	for i := range s.conditions {
		if !s.conditions[i].holds(r) {
			return false
		}
	}
	return true
}

func anyMatch(patterns []string, v string) bool {
	for _, p := range patterns {
		if Match(p, v) {
			return true
		}
	}
	return false
}

// holds evaluates one condition. A key the request lacks matches no value,
// so the positive operators fail and the negated ones hold — as in IAM,
// where "StringNotEquals aws:SourceVpce" is true for a request that came
// through no endpoint at all. That is what makes "Deny unless through
// vpce-X" refuse the internet path.
func (c *condition) holds(r *Request) bool {
	switch c.op {
	case opIPAddress, opNotIPAddress:
		in := false
		a := r.SourceIP
		if c.key == KeyVpcSourceIP {
			a = r.VpcSourceIP
		}
		if a.IsValid() {
			ip := a.Unmap()
			for _, p := range c.prefixes {
				if p.Contains(ip) {
					in = true
					break
				}
			}
		}
		return in == (c.op == opIPAddress)
	}
	var v string
	switch c.key {
	case KeySourceVpce:
		v = r.SourceVpce
	case KeySourceVpc:
		v = r.SourceVpc
	}
	hit := false
	if v != "" {
		for _, want := range c.values {
			if c.op == opStringEquals || c.op == opStringNotEquals {
				hit = want == v
			} else {
				hit = Match(want, v)
			}
			if hit {
				break
			}
		}
	}
	return hit == (c.op == opStringEquals || c.op == opStringLike)
}

// Match reports whether v matches the IAM pattern p, in which * matches
// any run of characters and ? any one character.
func Match(p, v string) bool {
	// Iterative glob with one backtrack point: linear enough for policy
	// sizes and never recursive, so a hostile pattern cannot blow the stack.
	pi, vi := 0, 0
	star, mark := -1, 0
	for vi < len(v) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, vi
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == v[vi]):
			pi++
			vi++
		case star >= 0:
			pi = star + 1
			mark++
			vi = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
