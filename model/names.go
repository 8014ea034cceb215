package model

import "strings"

// MaxNameLen bounds resource and host names.
const MaxNameLen = 63

// ValidateName checks a user-chosen name of a resource of kind k. Names are
// 1–63 characters of letters, digits, '.', '_' and '-', start with a letter
// or digit, and never look like an id of the same kind (so a reference that
// looks like an id always means the id).
func ValidateName(k Kind, name string) error {
	what := k.Noun() + " name"
	if err := validateLabel(what, name); err != nil {
		return err
	}
	if IsID(k, name) {
		return Invalidf("%s %q looks like %s id; choose a name that does not start with %q", what, name, k.ANoun(), string(k)+"-")
	}
	return nil
}

// ValidateHostID checks a host or edge id chosen by its operator (for
// example "host-a" or "edge-1").
func ValidateHostID(id string) error {
	return validateLabel("host id", id)
}

func validateLabel(what, s string) error {
	if s == "" {
		return Invalidf("%s is empty", what)
	}
	if len(s) > MaxNameLen {
		return Invalidf("%s %q is %d characters long; the limit is %d", what, s, len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			i > 0 && strings.IndexByte("._-", c) >= 0
		if !ok {
			return Invalidf("%s %q has %q at position %d; use letters, digits, '.', '_' and '-', starting with a letter or digit", what, s, c, i+1)
		}
	}
	return nil
}

// DefaultSuffix names a VPC's default security group or network ACL by
// the VPC's name or id: red/default. Names cannot hold '/', so the form
// never collides with one.
const DefaultSuffix = "/default"

// DefaultOf reports whether ref names a VPC's default group or ACL, and
// which VPC.
func DefaultOf(ref string) (vpc string, ok bool) {
	vpc, ok = strings.CutSuffix(ref, DefaultSuffix)
	return vpc, ok && vpc != ""
}
