package jobs

// The tests start and stop many queues; River's random start-up delays
// would only slow them down.
func init() { testOnly = true }
