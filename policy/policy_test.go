package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const onlyVpceA = `{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "only-through-vpce-a",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
    "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-aaaa"}}
  }, {
    "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*", "Resource": "*"
  }]
}`

func req(action, res, vpce, vpc, ip string) *Request {
	r := &Request{Action: action, Resource: res, SourceVpce: vpce, SourceVpc: vpc}
	if ip != "" {
		r.SourceIP = netip.MustParseAddr(ip)
	}
	return r
}

func TestEvaluate(t *testing.T) {
	cases := []struct {
		name, policy string
		r            *Request
		want         Decision
	}{
		{"via vpce-A", onlyVpceA, req("s3:GetObject", "arn:aws:s3:::b/k", "vpce-aaaa", "vpc-1", "10.0.1.5"), Allow},
		{"via vpce-B", onlyVpceA, req("s3:GetObject", "arn:aws:s3:::b/k", "vpce-bbbb", "vpc-2", "10.0.1.5"), ExplicitDeny},
		{"internet: no endpoint at all", onlyVpceA, req("s3:PutObject", "arn:aws:s3:::b/k", "", "", "203.0.113.7"), ExplicitDeny},
		{"other bucket not covered by the deny", onlyVpceA, req("s3:GetObject", "arn:aws:s3:::c/k", "", "", "203.0.113.7"), Allow},
		{"list on the bucket itself", onlyVpceA, req("s3:ListBucket", "arn:aws:s3:::b", "vpce-bbbb", "", ""), ExplicitDeny},
		{"action case-insensitive", onlyVpceA, req("S3:GETOBJECT", "arn:aws:s3:::b/k", "vpce-bbbb", "", ""), ExplicitDeny},
		{"no allow: implicit deny",
			`{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`,
			req("s3:PutObject", "arn:aws:s3:::b/k", "", "", ""), ImplicitDeny},
		{"allow by VPC",
			`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpc":["vpc-9","vpc-1"]}}}}`,
			req("s3:GetObject", "arn:aws:s3:::b/k", "vpce-x", "vpc-1", ""), Allow},
		{"StringEquals with the key missing fails",
			`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpc":"vpc-1"}}}}`,
			req("s3:GetObject", "arn:aws:s3:::b/k", "", "", ""), ImplicitDeny},
		{"IpAddress in CIDR",
			`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/16"}}}}`,
			req("s3:GetObject", "x", "", "", "10.0.3.4"), Allow},
		{"VpcSourceIp through an endpoint",
			`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:VpcSourceIp":"10.0.0.0/16"}}}}`,
			&Request{Action: "s3:GetObject", Resource: "x", SourceVpce: "vpce-a", VpcSourceIP: netip.MustParseAddr("10.0.3.4")}, Allow},
		{"VpcSourceIp absent over the internet",
			`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:VpcSourceIp":"0.0.0.0/0"}}}}`,
			req("s3:GetObject", "x", "", "", "203.0.113.7"), ImplicitDeny},
		{"IpAddress outside",
			`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/16","192.0.2.1"]}}}}`,
			req("s3:GetObject", "x", "", "", "10.1.3.4"), ImplicitDeny},
		{"NotIpAddress deny wins over allow",
			`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`,
			req("s3:GetObject", "x", "", "", "203.0.113.9"), ExplicitDeny},
		{"NotIpAddress inside: allow stands",
			`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`,
			req("s3:GetObject", "x", "", "", "10.9.9.9"), Allow},
		{"two conditions are ANDed",
			`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpce":"vpce-a"},"IpAddress":{"aws:SourceIp":"10.0.1.0/24"}}}}`,
			req("s3:GetObject", "x", "vpce-a", "", "10.0.2.1"), ImplicitDeny},
		{"NotAction",
			`{"Statement":{"Effect":"Allow","NotAction":"s3:DeleteObject","Resource":"*"}}`,
			req("s3:DeleteObject", "x", "", "", ""), ImplicitDeny},
		{"StringLike",
			`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringLike":{"aws:SourceVpce":"vpce-a*"}}}}`,
			req("s3:GetObject", "x", "vpce-abc", "", ""), Allow},
		{"full access", FullAccess, req("s3:DeleteBucket", "arn:aws:s3:::b", "", "", ""), Allow},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse([]byte(c.policy))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Evaluate(c.r); got != c.want {
				t.Errorf("Evaluate = %v, want %v", got, c.want)
			}
		})
	}
}

func TestNilPolicyAllows(t *testing.T) {
	var p *Policy
	if p.Evaluate(req("s3:GetObject", "x", "", "", "")) != Allow {
		t.Fatal("no policy must allow")
	}
}

func TestParseRefuses(t *testing.T) {
	cases := []struct{ name, doc, says string }{
		{"not json", `{`, "not a JSON policy"},
		{"no statement", `{"Version":"2012-10-17"}`, "needs a Statement"},
		{"bad version", `{"Version":"2020","Statement":[]}`, "Version"},
		{"bad effect", `{"Statement":{"Effect":"allow","Action":"*","Resource":"*"}}`, `Effect "allow"`},
		{"principal account", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"*","Resource":"*"}}`, "Principal"},
		{"no action", `{"Statement":{"Effect":"Allow","Resource":"*"}}`, "Action"},
		{"no resource", `{"Statement":{"Effect":"Allow","Action":"*"}}`, "Resource is missing"},
		{"unknown operator", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"x"}}}}`, "not supported"},
		{"unknown key", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:username":"x"}}}}`, "aws:username"},
		{"ip op on string key", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceVpce":"x"}}}}`, "does not apply"},
		{"bad cidr", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/99"}}}}`, "not an IPv4"},
		{"too big", `{"Statement":"` + strings.Repeat("x", maxSize) + `"}`, "at most"},
		// Review finding 4: nothing the evaluator does not understand is skipped.
		{"misspelt Conditions", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Conditions":{"StringEquals":{"aws:SourceVpce":"vpce-a"}}}}`, "Conditions"},
		{"unknown top-level field", `{"Statment":{"Effect":"Allow","Action":"*","Resource":"*"}}`, "Statment"},
		{"operator without keys", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{}}}}`, "has no keys"},
		{"operator null", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":null}}}`, "has no keys"},
		{"condition null", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":null}}`, "Condition must be"},
		{"condition empty", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}}}`, "Condition must be"},
		{"condition value null", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpce":null}}}}`, "give a string"},
		{"condition value list with null", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpce":["vpce-a",null]}}}}`, "give a string"},
		{"NotResource", `{"Statement":{"Effect":"Allow","Action":"*","NotResource":"arn:aws:s3:::secret/*"}}`, "NotResource is not supported"},
		{"NotPrincipal", `{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"x"},"Action":"*","Resource":"*"}}`, "NotPrincipal is not supported"},
		{"duplicate Effect", `{"Statement":{"Effect":"Deny","Effect":"Allow","Action":"*","Resource":"*"}}`, "appears twice"},
		{"duplicate key other case", `{"Statement":{"Effect":"Deny","effect":"Allow","Action":"*","Resource":"*"}}`, "appears twice"},
		{"duplicate condition key", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpce":"a","aws:sourcevpce":"b"}}}}`, "appears twice"},
		{"trailing garbage", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}} {"x":1}`, "more after"},
		{"action null", `{"Statement":{"Effect":"Allow","Action":null,"Resource":"*"}}`, "Action"},
		{"principal null", `{"Statement":{"Effect":"Allow","Principal":null,"Action":"*","Resource":"*"}}`, "Principal"},
		// Review finding 5: a pattern long enough to make matching expensive.
		{"long pattern", `{"Statement":{"Effect":"Deny","Action":"*","Resource":"` + strings.Repeat("*a", 5000) + `"}}`, "at most 1200"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("Parse = %v, want an ErrInvalid saying %q", err, c.says)
			}
		})
	}
}

// TestMatchWorstCase (review finding 5): the longest pattern Parse
// accepts against the longest resource the store lets through matches in
// well under a millisecond or so, not seconds.
func TestMatchWorstCase(t *testing.T) {
	p := strings.Repeat("*a", maxPattern/2-1) + "*b"
	v := "arn:aws:s3:::" + strings.Repeat("b", 63) + "/" + strings.Repeat("a", 1024)
	if _, err := Parse([]byte(`{"Statement":{"Effect":"Deny","Action":"*","Resource":"` + p + `"}}`)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 10 {
		Match(p, v)
	}
	if d := time.Since(start) / 10; d > 20*time.Millisecond {
		t.Fatalf("one worst-case match took %v", d)
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		p, v string
		want bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*c", "abbbc", true}, {"a*c", "abbb", false},
		{"s3:Get*", "s3:GetObject", true}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"arn:aws:s3:::b/*", "arn:aws:s3:::b", false}, {"*a*b*", "xxaxxbxx", true}, {"", "", true}, {"", "x", false},
	}
	for _, c := range cases {
		if got := Match(c.p, c.v); got != c.want {
			t.Errorf("Match(%q, %q) = %v", c.p, c.v, got)
		}
	}
}

// FuzzParse: any document either parses into a policy that evaluates
// without panicking, or is refused with ErrInvalid.
func FuzzParse(f *testing.F) {
	f.Add([]byte(onlyVpceA), "s3:GetObject", "arn:aws:s3:::b/k", "vpce-aaaa")
	f.Add([]byte(FullAccess), "s3:PutObject", "x", "")
	f.Add([]byte(`{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}`), "a", "b", "c")
	f.Fuzz(func(t *testing.T, doc []byte, action, resource, vpce string) {
		p, err := Parse(doc)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		r := &Request{Action: action, Resource: resource, SourceVpce: vpce, SourceIP: netip.MustParseAddr("10.0.0.1")}
		d := p.Evaluate(r)
		if d > ExplicitDeny {
			t.Fatalf("decision %d", d)
		}
	})
}

// FuzzMatch checks the glob against a slow, obviously right recursive one.
func FuzzMatch(f *testing.F) {
	f.Add("a*b?c", "axxbyc")
	f.Add("**", "")
	f.Fuzz(func(t *testing.T, p, v string) {
		if len(p) > 16 || len(v) > 16 {
			return
		}
		if got, want := Match(p, v), slowMatch(p, v); got != want {
			t.Fatalf("Match(%q, %q) = %v, want %v", p, v, got, want)
		}
	})
}

func slowMatch(p, v string) bool {
	if p == "" {
		return v == ""
	}
	switch p[0] {
	case '*':
		return slowMatch(p[1:], v) || v != "" && slowMatch(p, v[1:])
	case '?':
		return v != "" && slowMatch(p[1:], v[1:])
	}
	return v != "" && p[0] == v[0] && slowMatch(p[1:], v[1:])
}
