package testcloud_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// streamSize is how much one measurement sends over TCP.
const streamSize = 64 << 20

// BenchmarkTCPThroughput: one TCP stream between two netstack instances
// on two in-process hosts (Geneve over UDP on loopback), next to the same
// between two wireguard-go netstack devices over loopback, in one run.
func BenchmarkTCPThroughput(b *testing.B) {
	b.Run("openvpc", func(b *testing.B) {
		s := newSceneTB(b)
		_, clientNS := s.run(b, "red-a", s.a, s.red)
		web, webNS := s.run(b, "red-a", s.b, s.red)
		l, err := webNS.Net.ListenTCP(&net.TCPAddr{Port: 5001})
		if err != nil {
			b.Fatal(err)
		}
		measure(b, l, func(ctx context.Context) (net.Conn, error) {
			return clientNS.Net.DialContext(ctx, "tcp", web.PrivateIp+":5001")
		})
	})
	b.Run("wireguard-netstack", func(b *testing.B) {
		client, server := wireguardPair(b)
		l, err := server.ListenTCP(&net.TCPAddr{Port: 5001})
		if err != nil {
			b.Fatal(err)
		}
		measure(b, l, func(ctx context.Context) (net.Conn, error) {
			return client.DialContext(ctx, "tcp", "192.168.77.2:5001")
		})
	})
}

// measure sends streamSize bytes per iteration through dial → l and
// reports Mbit/s.
func measure(b *testing.B, l net.Listener, dial func(context.Context) (net.Conn, error)) {
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	buf := make([]byte, 64<<10)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := dial(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for sent := 0; sent < streamSize; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.Close()
		total += time.Since(start)
	}
	b.ReportMetric(float64(streamSize*b.N)*8/total.Seconds()/1e6, "Mbit/s")
}

// wireguardPair builds two wireguard-go devices on netstack, peered over
// UDP on loopback: the baseline openvpc's netstack path is compared with.
func wireguardPair(b *testing.B) (*netstack.Net, *netstack.Net) {
	key := func() (priv, pub string) {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		return hex.EncodeToString(k.Bytes()), hex.EncodeToString(k.PublicKey().Bytes())
	}
	port := func() int {
		l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		return l.LocalAddr().(*net.UDPAddr).Port
	}
	privA, pubA := key()
	privB, pubB := key()
	portA, portB := port(), port()
	mk := func(ip, priv string, listen int, peerPub string, peerPort int, peerIP string) *netstack.Net {
		tun, n, err := netstack.CreateNetTUN([]netip.Addr{netip.MustParseAddr(ip)}, nil, 1420)
		if err != nil {
			b.Fatal(err)
		}
		dev := device.NewDevice(tun, conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
		cfg := fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nallowed_ip=%s/32\nendpoint=127.0.0.1:%d\n", priv, listen, peerPub, peerIP, peerPort)
		if err := dev.IpcSet(cfg); err != nil {
			b.Fatal(err)
		}
		if err := dev.Up(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(dev.Close)
		return n
	}
	a := mk("192.168.77.1", privA, portA, pubB, portB, "192.168.77.2")
	bb := mk("192.168.77.2", privB, portB, pubA, portA, "192.168.77.1")
	return a, bb
}
