// Command kstatus prints the kstatus verdict (the library Flux's health checks and
// `flux`/kpt waits use: github.com/fluxcd/cli-utils/pkg/kstatus) for each object given
// as a JSON document on stdin, one JSON result per line: {"status": ..., "message": ...}.
// Used by the integration tests to judge live LLMConfigs exactly as Flux does.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func main() {
	dec := json.NewDecoder(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: bad input:", err)
			os.Exit(2)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil { // integers as int64, as from the API
			fmt.Fprintln(os.Stderr, "kstatus: bad object:", err)
			os.Exit(2)
		}
		res, err := status.Compute(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
		_ = enc.Encode(map[string]string{"status": res.Status.String(), "message": res.Message})
	}
}
