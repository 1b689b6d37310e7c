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
