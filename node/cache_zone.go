package node

import (
	"fmt"
	"strings"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
)

// zonesFromFacts reads the VPC's private hosted zones, names made fully
// qualified (with the final dot) for the resolver.
func zonesFromFacts(f *pb.VpcFacts, v *tables.VPC) error {
	for _, z := range f.Zones {
		id, ok := model.ParseID(model.KindZone, z.Id)
		if !ok {
			return fmt.Errorf("bad zone id %q", z.Id)
		}
		if z.Name == "" {
			return fmt.Errorf("zone %s has no name", z.Id)
		}
		recs := make([]tables.ZoneRecord, 0, len(z.Records))
		for _, r := range z.Records {
			recs = append(recs, tables.ZoneRecord{Name: strings.ToLower(r.Name) + ".", Type: r.Type, TTL: r.Ttl, Value: r.Value})
		}
		v.Zones = append(v.Zones, tables.NewZone(id, strings.ToLower(z.Name)+".", recs))
	}
	return nil
}

// zoneFacts reads a VPC's zones back in the Mapping Service's terms, for
// State().
func zoneFacts(v *tables.VPC, f *pb.VpcFacts) {
	for _, z := range v.Zones {
		p := &pb.ZoneFacts{Id: model.FormatID(model.KindZone, z.ID), Name: strings.TrimSuffix(z.Name, ".")}
		for _, r := range z.Records {
			p.Records = append(p.Records, &pb.ZoneRecord{Name: strings.TrimSuffix(r.Name, "."), Type: r.Type, Ttl: r.TTL, Value: r.Value})
		}
		f.Zones = append(f.Zones, p)
	}
}
