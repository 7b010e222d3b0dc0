//go:build tools

// Package tools pins the command-line tools the deployment tests build.
package tools

import (
	_ "github.com/rhysd/actionlint/cmd/actionlint"
	_ "helm.sh/helm/v3/cmd/helm"
)
