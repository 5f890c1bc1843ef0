package sandbox

func defaultServices() []Factory { return nil }
