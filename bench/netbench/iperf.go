package netbench

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrNoIperf3 is returned when the iperf3 program is not on PATH.
var ErrNoIperf3 = errors.New("netbench: iperf3 is not installed (apt-get install iperf3)")

// iperf3Report is the part of `iperf3 -c … -J` output we read.
type iperf3Report struct {
	End struct {
		SumSent struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int     `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// parseIperf3 reads a client's JSON report. iperf3 reports its own
// failures inside the JSON (and exits non-zero), so the error text is
// taken from there when present.
func parseIperf3(out []byte) (Result, error) {
	var r iperf3Report
	if err := json.Unmarshal(out, &r); err != nil {
		return Result{}, fmt.Errorf("netbench: iperf3 printed no JSON report (%v): %.200s", err, strings.TrimSpace(string(out)))
	}
	if r.Error != "" {
		return Result{}, fmt.Errorf("netbench: iperf3: %s", r.Error)
	}
	if r.End.SumReceived.BitsPerSecond <= 0 {
		return Result{}, errors.New("netbench: iperf3 reported no bytes received")
	}
	return Result{BitsPerSecond: r.End.SumReceived.BitsPerSecond, Retransmits: r.End.SumSent.Retransmits}, nil
}
