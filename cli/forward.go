package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
)

func forwardCmd(o *Options) *cobra.Command {
	var listen, to string
	c := &cobra.Command{
		Use:   "forward INSTANCE --listen 127.0.0.1:PORT --to ADDR:PORT",
		Short: "Forward a local port through an instance: connections to --listen are made from inside the instance to --to",
		Args:  cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			ctx := cmd.Context()
			ir, err := cl.inst.GetInstance(ctx, call(&pb.GetInstanceRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			inst := ir.Msg.Instance
			vr, err := cl.vpc.GetVpc(ctx, call(&pb.GetVpcRequest{Ref: inst.VpcId}))
			if err != nil {
				return err
			}
			hr, err := cl.inst.ListHosts(ctx, call(&pb.ListHostsRequest{}))
			if err != nil {
				return err
			}
			agentURL := ""
			for _, h := range hr.Msg.Hosts {
				if h.Id == inst.HostId {
					agentURL = h.AgentUrl
				}
			}
			if agentURL == "" {
				return fmt.Errorf("the agent of host %s serves no API to forward through", inst.HostId)
			}
			host, port, err := net.SplitHostPort(to)
			if err != nil {
				return fmt.Errorf("--to %q: write it as ADDRESS:PORT or INSTANCE:PORT", to)
			}
			if net.ParseIP(host) == nil {
				tr, err := cl.inst.GetInstance(ctx, call(&pb.GetInstanceRequest{Ref: host}))
				if err != nil {
					return err
				}
				host = tr.Msg.Instance.PrivateIp
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", listen, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "forwarding %s → %s:%s from inside %s (%s); Ctrl-C to stop\n", ln.Addr(), host, port, inst.Id, inst.PrivateIp)
			return Forward(ctx, ln, agentURL, vr.Msg.Vpc.Vni, inst.PrivateIp, net.JoinHostPort(host, port), cmd.ErrOrStderr())
		}),
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "local address to accept connections on")
	c.Flags().StringVar(&to, "to", "", "where the instance connects: ADDRESS:PORT or INSTANCE:PORT (required)")
	_ = c.MarkFlagRequired("to")
	return c
}

// Forward accepts connections on ln until ctx ends and carries each to
// `to`, dialed from inside the instance ip (VNI vni) by its host agent. Why
// a connection could not be carried is written to log (nil: nowhere); the
// client itself only sees its connection closed, as with a refused port.
func Forward(ctx context.Context, ln net.Listener, agentURL string, vni uint32, ip, to string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	u, err := url.Parse(agentURL)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			up, br, err := dialForward(u.Host, vni, ip, to)
			if err != nil {
				fmt.Fprintf(log, "openvpc: forward from %s to %s: %v\n", c.RemoteAddr(), to, err)
				return
			}
			defer up.Close()
			agent.Splice(c, c, &bufferedConn{Conn: up, r: br})
		}()
	}
}

// dialForward asks the agent at hostport for a stream from inside the
// instance and returns it once upgraded.
func dialForward(hostport string, vni uint32, ip, to string) (net.Conn, *bufio.Reader, error) {
	conn, err := net.Dial("tcp", hostport)
	if err != nil {
		return nil, nil, err
	}
	q := url.Values{"vni": {strconv.FormatUint(uint64(vni), 10)}, "ip": {ip}, "to": {to}}
	fmt.Fprintf(conn, "GET %s?%s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", agent.ForwardPath, q.Encode(), hostport, agent.ForwardProtocol)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		why, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		conn.Close()
		return nil, nil, fmt.Errorf("the host agent could not connect: %s: %s", resp.Status, strings.TrimSpace(string(why)))
	}
	return conn, br, nil
}

// bufferedConn reads what the response reader already buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
