package deps

import (
	_ "github.com/google/cel-go/cel"
	_ "github.com/open-policy-agent/opa/v1/rego"
	_ "github.com/prometheus/alertmanager/api/v2/client"
	_ "github.com/prometheus/client_golang/api/prometheus/v1"
	_ "github.com/spf13/cobra"
	_ "github.com/stretchr/testify/require"
	_ "istio.io/api/networking/v1"
	_ "istio.io/client-go/pkg/clientset/versioned"
	_ "sigs.k8s.io/controller-runtime/pkg/envtest"
	_ "sigs.k8s.io/controller-runtime/pkg/webhook"
	_ "sigs.k8s.io/yaml"
)
