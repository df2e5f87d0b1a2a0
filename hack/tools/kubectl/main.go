// Command kubectl is the upstream kubectl (k8s.io/kubernetes/cmd/kubectl), built from the
// k8s.io/kubectl module at the control plane's Kubernetes version. It exists because
// `go install k8s.io/kubernetes/cmd/kubectl@v1.36.3` is refused (that module has replace
// directives); the body is upstream's main.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	// Import to initialize client auth plugins.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
)

func main() {
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) // nolint:errcheck
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
