package tables

// Zone is a private hosted zone associated with the VPC, as the VPC
// resolver answers it. Zones are read by the resolver only, never on the
// packet path; a compiled Zone is immutable and shared by snapshots.
type Zone struct {
	ID uint64 // zone-…
	// Name is fully qualified and lower case, with the final dot.
	Name string
	// Records are in the order pushed (by name, then type).
	Records []ZoneRecord

	byName map[string][]ZoneRecord
}

// ZoneRecord is one record: Name fully qualified, lower case, with the
// final dot; Type A, AAAA, CNAME, TXT or SRV; Value as the API keeps it.
type ZoneRecord struct {
	Name  string
	Type  string
	TTL   uint32
	Value string
}

// NewZone builds a zone with its lookup index.
func NewZone(id uint64, name string, records []ZoneRecord) *Zone {
	z := &Zone{ID: id, Name: name, Records: records, byName: map[string][]ZoneRecord{}}
	for _, r := range records {
		z.byName[r.Name] = append(z.byName[r.Name], r)
	}
	return z
}

// Lookup returns the records named name (fully qualified, lower case, with
// the final dot).
func (z *Zone) Lookup(name string) []ZoneRecord { return z.byName[name] }

// Contains reports whether name is the zone's apex or below it.
func (z *Zone) Contains(name string) bool {
	return name == z.Name || len(name) > len(z.Name) && name[len(name)-len(z.Name)-1] == '.' && name[len(name)-len(z.Name):] == z.Name
}

// ZoneOf is the most specific zone associated with v containing name.
func (v *VPC) ZoneOf(name string) *Zone {
	var best *Zone
	for _, z := range v.Zones {
		if z.Contains(name) && (best == nil || len(z.Name) > len(best.Name)) {
			best = z
		}
	}
	return best
}
