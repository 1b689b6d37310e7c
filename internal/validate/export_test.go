package validate

// CompileAll decodes and compiles every embedded CRD, as the first object of each kind would,
// and returns how many kinds there are.
func CompileAll(v *Validator) (int, error) {
	for _, c := range v.crds {
		if _, err := c.compiled(); err != nil {
			return 0, err
		}
	}
	return len(v.crds), nil
}

// MaxCachedValidators is the bound on validators kept per CRD version.
const MaxCachedValidators = maxCachedValidators

// CachedValidators counts the nested-field validators kept for the served versions of a kind.
func CachedValidators(v *Validator, group, kind string) int {
	versions, _ := v.crds[groupKind{group, kind}].compiled()
	seen := map[*crdVersion]bool{}
	n := 0
	for _, cv := range versions {
		if !seen[cv] {
			seen[cv] = true
			n += int(cv.schema.size.Load())
		}
	}
	return n
}
