package hl7_test

import (
	"fmt"
	"time"

	"ehrgate/hl7"
)

func ExampleParse() {
	data := []byte("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|MSG1|P|2.5.1\r" +
		"PID|1||123^^^HOSP^MR~456^^^STATE^SS||DOE^JANE\r" +
		"OBX|1|ST|8867-4^Heart rate^LN||fast \\T\\ regular\r")
	m, err := hl7.Parse(data, hl7.ParseOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.MessageType().Code, m.MessageType().Trigger, m.ControlID(), m.Version())
	fmt.Println(m.Get("PID-3[2].1"), m.Get("PID-3[2].4"))
	fmt.Println(m.Get("OBX-3.2"), "/", m.Get("OBX-5"))
	// Output:
	// ORU R01 MSG1 2.5.1
	// 456 STATE
	// Heart rate / fast & regular
}

func ExampleBuildACK() {
	m, _ := hl7.Parse([]byte("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|MSG1|P|2.3\r"), hl7.ParseOptions{})
	ack := hl7.BuildACKWith(m, hl7.ACKOptions{
		Code: hl7.AckApplicationAccept, Now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), ControlID: "A1",
	})
	fmt.Printf("%q\n", ack)
	// Output:
	// "MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240101000000+0000||ACK^R01|A1|P|2.3\rMSA|AA|MSG1\r"
}
