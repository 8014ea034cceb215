package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// endpointCloud is `openvpc up --nic tun` with its object store, inside a
// namespace of the test's own: its underlay (loopback 127.0.1.x, Geneve
// on 6081), API and store never meet another run's.
type endpointCloud struct {
	t      *testing.T
	m      *machine
	up     *proc
	dir    string
	url    string
	config string
	insts  []string
}

func newEndpointCloud(t *testing.T) *endpointCloud {
	var b [3]byte
	_, _ = rand.Read(b[:])
	c := &endpointCloud{t: t, dir: t.TempDir(), url: "https://127.0.0.1:7070"}
	// Not ovpce2e-…: other tests' leak checks own that prefix.
	c.m = newMachine(t, "ovpcvpce-"+hex.EncodeToString(b[:]))
	h, err := netlink.NewHandleAt(c.m.ns)
	if err != nil {
		t.Fatal(err)
	}
	up(t, h, "lo")
	h.Close()
	c.config = filepath.Join(c.dir, "config")
	c.up = start(t, c.m.ns, nil, bin, "up", "--nic", "tun", "--hosts", "1", "--edges", "1", "--listen", "127.0.0.1:7070",
		"--data-dir", filepath.Join(c.dir, "state"), "--admin-config", c.config, "--internet-proxy", "", "--metrics", "", "--log-level", "info")
	// Terminate the instances before up stops (cleanups run last first):
	// their namespaces go with them.
	t.Cleanup(func() {
		for _, id := range c.insts {
			c.cli("instance", "terminate", id)
		}
		for _, id := range c.insts {
			c.eventuallyGone(id)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, code := c.cli("service", "list"); code == 0 {
			break
		}
		select {
		case <-c.up.done:
			t.Fatalf("openvpc up exited:\n%s", c.up.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("openvpc up did not answer in 30s:\n%s", c.up.out)
		}
	}
	return c
}

func (c *endpointCloud) cli(args ...string) (string, int) {
	c.t.Helper()
	return run(c.t, c.m.ns, 60*time.Second, bin, append([]string{"--server", c.url, "--config", c.config}, args...)...)
}

func (c *endpointCloud) ok(args ...string) string {
	c.t.Helper()
	out, code := c.cli(args...)
	if code != 0 {
		c.t.Fatalf("openvpc %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func (c *endpointCloud) eventuallyGone(id string) {
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join("/run/netns", "ovpc-"+id)); err != nil {
			return
		}
	}
	c.t.Errorf("instance %s's namespace stayed", id)
}

// aws runs the aws CLI inside instance inst, pointed at the store.
func (c *endpointCloud) aws(inst string, args ...string) (string, int) {
	c.t.Helper()
	env := []string{"env", "AWS_CONFIG_FILE=" + filepath.Join(c.dir, "aws-config"), "AWS_ACCESS_KEY_ID=openvpc", "AWS_SECRET_ACCESS_KEY=openvpc",
		"AWS_EC2_METADATA_DISABLED=true", "aws", "--endpoint-url", "http://203.0.113.130", "--cli-read-timeout", "10", "--cli-connect-timeout", "5"}
	return c.cli(append(append([]string{"exec", inst, "--"}, env...), args...)...)
}

// TestEndpointAWSCLI: the aws CLI inside a Linux instance puts, lists
// and gets objects through a gateway endpoint; the store logs each
// request with the instance's private address and the vpce id; tshark on
// the edge ↔ service node wire sees Geneve with the EndpointID option
// (0x82) around the instance's private source; a bucket policy "only via
// this endpoint" refuses the internet path, where the store sees the
// Elastic IP.
func TestEndpointAWSCLI(t *testing.T) {
	prerequisites(t, "aws", "tshark")
	c := newEndpointCloud(t)
	if err := os.WriteFile(filepath.Join(c.dir, "aws-config"), []byte("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	c.ok("subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	var inst struct{ Id, PrivateIp string }
	if err := json.Unmarshal([]byte(c.ok("instance", "run", "--subnet", "red-a", "--name", "web", "--wait", "-o", "json")), &inst); err != nil {
		t.Fatal(err)
	}
	c.insts = append(c.insts, inst.Id)
	var ep struct{ Id, PrefixListId string }
	if err := json.Unmarshal([]byte(c.ok("endpoint", "create", "--vpc", "red", "--service", "com.openvpc.local.s3", "--route-table", "main", "-o", "json")), &ep); err != nil {
		t.Fatal(err)
	}
	if routes := c.ok("route", "list", "--vpc", "red"); !strings.Contains(routes, ep.PrefixListId) || !strings.Contains(routes, ep.Id) {
		t.Fatalf("route list does not show %s → %s:\n%s", ep.PrefixListId, ep.Id, routes)
	}

	// The edge ↔ service node wire: loopback of this namespace, to the
	// service node's underlay address.
	pcap := filepath.Join(c.dir, "wire.pcap")
	shark := start(t, c.m.ns, nil, "tshark", "-i", "lo", "-f", "udp port 6081 and host 127.0.1.250", "-w", pcap)
	time.Sleep(2 * time.Second) // tshark takes a moment to capture

	var out string
	var code int
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		// The first try also waits for the endpoint's route to reach the host.
		if out, code = c.aws("web", "s3", "mb", "s3://red-data"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("aws s3 mb through the endpoint: exit %d\n%s\n%s", code, out, c.up.out)
		}
	}
	slides := filepath.Join(c.dir, "slides.txt") // instances share the machine's file system
	if err := os.WriteFile(slides, []byte("the last scene\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code = c.aws("web", "s3", "cp", slides, "s3://red-data/slides.txt"); code != 0 {
		t.Fatalf("aws s3 cp up: %d\n%s", code, out)
	}
	if out, code = c.aws("web", "s3", "ls", "s3://red-data"); code != 0 || !strings.Contains(out, "slides.txt") {
		t.Fatalf("aws s3 ls: %d\n%s", code, out)
	}
	if out, code = c.aws("web", "s3", "cp", "s3://red-data/slides.txt", "-"); code != 0 || !strings.Contains(out, "the last scene") {
		t.Fatalf("aws s3 cp down: %d\n%s", code, out)
	}
	policy := fmt.Sprintf(`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::red-data","arn:aws:s3:::red-data/*"],"Condition":{"StringNotEquals":{"aws:SourceVpce":"%s"}}}]}`, ep.Id)
	if out, code = c.aws("web", "s3api", "put-bucket-policy", "--bucket", "red-data", "--policy", policy); code != 0 {
		t.Fatalf("put-bucket-policy: %d\n%s", code, out)
	}
	shark.stop(t)

	// The store's log: the private address and the endpoint, per request.
	logged := 0
	for _, l := range strings.Split(c.up.out.String(), "\n") {
		if strings.Contains(l, `msg="s3 request"`) {
			logged++
			if !strings.Contains(l, "source="+inst.PrivateIp) || !strings.Contains(l, "endpoint="+ep.Id) {
				t.Errorf("the store logged %q: want source=%s endpoint=%s", l, inst.PrivateIp, ep.Id)
			}
		}
	}
	if logged < 4 {
		t.Errorf("the store logged %d requests, want at least 4:\n%s", logged, c.up.out)
	}

	// tshark: Geneve to and from the service node with the EndpointID option, the private source kept.
	dump, code := run(t, c.m.ns, 60*time.Second, "tshark", "-r", pcap, "-V", "-Y", "geneve")
	if code != 0 {
		t.Fatalf("tshark -r: %d\n%s", code, dump)
	}
	if !strings.Contains(dump, "Source Address: "+inst.PrivateIp) && !strings.Contains(dump, "Src: "+inst.PrivateIp) {
		t.Errorf("no Geneve packet on the edge ↔ service wire has the private source %s:\n%.4000s", inst.PrivateIp, dump)
	}
	if !strings.Contains(strings.ToLower(dump), "type: 0x82") || !strings.Contains(dump, "0xfff0") {
		t.Errorf("no Geneve option class 0xfff0 type 0x82 (EndpointID) on the edge ↔ service wire:\n%.4000s", dump)
	}

	// The internet path: red gets an internet gateway and web an Elastic
	// IP; without the endpoint's route the same request goes out through
	// the edge as the EIP, and the policy refuses it.
	c.ok("igw", "create", "--name", "red-igw")
	c.ok("igw", "attach", "red-igw", "--vpc", "red")
	c.ok("route", "create", "--vpc", "red", "--dest", "0.0.0.0/0", "--target", "red-igw")
	var eip struct{ PublicIp string }
	if err := json.Unmarshal([]byte(c.ok("eip", "allocate", "--name", "web-ip", "-o", "json")), &eip); err != nil {
		t.Fatal(err)
	}
	c.ok("eip", "associate", "web-ip", "--instance", "web")
	c.ok("endpoint", "modify", ep.Id, "--remove-route-table", "main")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out, code = c.aws("web", "s3", "ls", "s3://red-data")
		if code != 0 && strings.Contains(out, "AccessDenied") && strings.Contains(c.up.out.String(), "source="+eip.PublicIp) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("over the internet: exit %d\n%s\nwant AccessDenied with the store seeing %s", code, out, eip.PublicIp)
		}
	}
	c.ok("endpoint", "delete", ep.Id)
}
