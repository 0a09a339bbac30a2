package identity

// Name lists for the synthetic generator, most frequent first (drawn with
// Zipf-like weights). Given names are common United States names (after the
// Social Security Administration's published lists of popular baby names);
// surnames are among the most frequent in the 2010 United States Census
// surname list; rare surnames are assembled from syllables to give the long
// tail real populations have. They describe no real person.
var (
	femaleNames = []string{
		"Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
		"Lisa", "Nancy", "Betty", "Margaret", "Sandra", "Ashley", "Kimberly", "Emily", "Donna", "Michelle",
		"Carol", "Amanda", "Dorothy", "Melissa", "Deborah", "Stephanie", "Rebecca", "Sharon", "Laura", "Cynthia",
		"Kathleen", "Amy", "Angela", "Shirley", "Anna", "Brenda", "Pamela", "Emma", "Nicole", "Helen",
		"Samantha", "Katherine", "Christine", "Debra", "Rachel", "Carolyn", "Janet", "Catherine", "Maria", "Heather",
		"Diane", "Ruth", "Julie", "Olivia", "Joyce", "Virginia", "Victoria", "Kelly", "Lauren", "Christina",
		"Joan", "Evelyn", "Judith", "Megan", "Andrea", "Cheryl", "Hannah", "Jacqueline", "Martha", "Gloria",
		"Teresa", "Ann", "Sara", "Madison", "Frances", "Kathryn", "Janice", "Jean", "Abigail", "Alice",
		"Judy", "Sophia", "Grace", "Denise", "Amber", "Doris", "Marilyn", "Danielle", "Beverly", "Isabella",
		"Theresa", "Diana", "Natalie", "Brittany", "Charlotte", "Marie", "Kayla", "Alexis", "Lori", "Ava",
		"Priya", "Mei", "Guadalupe", "Ximena", "Fatima", "Aaliyah", "Chloe", "Zoe", "Leah", "Naomi",
		"Valentina", "Camila", "Lucia", "Ingrid", "Yesenia", "Rosa", "Esperanza", "Keisha", "Tamika", "Ebony",
	}
	maleNames = []string{
		"James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Christopher",
		"Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul", "Andrew", "Joshua",
		"Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Edward", "Jason", "Jeffrey", "Ryan",
		"Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen", "Larry", "Justin", "Scott", "Brandon",
		"Benjamin", "Samuel", "Gregory", "Alexander", "Frank", "Patrick", "Raymond", "Jack", "Dennis", "Jerry",
		"Tyler", "Aaron", "Jose", "Adam", "Nathan", "Henry", "Douglas", "Zachary", "Peter", "Kyle",
		"Ethan", "Walter", "Noah", "Jeremy", "Christian", "Keith", "Roger", "Terry", "Gerald", "Harold",
		"Sean", "Austin", "Carl", "Arthur", "Lawrence", "Dylan", "Jesse", "Jordan", "Bryan", "Billy",
		"Joe", "Bruce", "Gabriel", "Logan", "Albert", "Willie", "Alan", "Juan", "Wayne", "Elijah",
		"Randy", "Roy", "Vincent", "Ralph", "Eugene", "Russell", "Bobby", "Mason", "Philip", "Louis",
		"Raj", "Wei", "Mohammed", "Santiago", "Mateo", "Diego", "Hiroshi", "Tariq", "Dmitri", "Kwame",
		"Luis", "Carlos", "Miguel", "Jamal", "Darnell", "Trevon", "Liam", "Owen", "Caleb", "Isaac",
	}
	commonSurnames = []string{
		"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
		"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
		"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
		"Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
		"Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
		"Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes",
		"Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper",
		"Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson",
		"Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes",
		"Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez",
		"Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes",
		"Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham",
		"Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson",
		"Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens",
		"Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen",
		"Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter",
		"Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz", "Hunt", "Hicks",
		"Holmes", "Palmer", "Wagner", "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox",
		"Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens",
		"Soto", "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins",
		"O'Brien", "Kowalski", "Ivanova", "Wang", "Park", "Nakamura", "Okafor", "Haddad", "Novak", "Schwartz",
	}
	surnameStarts = []string{"Ash", "Bel", "Brad", "Cal", "Dar", "Ed", "Fair", "Gold", "Hart", "Kirk",
		"Lang", "Mor", "Nor", "Pem", "Quin", "Rad", "Sel", "Thorn", "Ux", "Van", "Wes", "Yar", "Zel", "Ost",
		"Bram", "Crom", "Dun", "Ell", "Fen", "Gar", "Hol", "Ing", "Jess", "Kel", "Lind", "Mar", "Ned", "Pol"}
	surnameEnds = []string{"ford", "ton", "ley", "wick", "man", "son", "berg", "stein", "ski", "ov",
		"ridge", "field", "wood", "worth", "by", "dale", "more", "hurst", "ell", "ard", "enko", "escu", "ez", "ini"}
	streetNames = []string{"Main", "Oak", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Pine",
		"Walnut", "Sunset", "River", "Church", "Highland", "Mill", "Jefferson", "Lincoln", "Spring", "Chestnut",
		"Willow", "Franklin", "Madison", "Meadow", "Forest", "Ridge", "Valley", "Birch", "Adams", "Jackson",
		"Center", "Union", "Broad", "Market", "Water", "Front", "High", "Prospect", "Summit", "Orchard"}
	streetTypes = [][2]string{{"Street", "St"}, {"Avenue", "Ave"}, {"Road", "Rd"}, {"Drive", "Dr"}, {"Lane", "Ln"},
		{"Court", "Ct"}, {"Boulevard", "Blvd"}, {"Place", "Pl"}, {"Terrace", "Ter"}, {"Way", "Way"}}
	genCities = []struct{ city, state, zip3, area string }{
		{"Springfield", "IL", "627", "217"}, {"Columbus", "OH", "432", "614"}, {"Madison", "WI", "537", "608"},
		{"Portland", "OR", "972", "503"}, {"Austin", "TX", "787", "512"}, {"Raleigh", "NC", "276", "919"},
		{"Denver", "CO", "802", "303"}, {"Richmond", "VA", "232", "804"}, {"Albany", "NY", "122", "518"},
		{"Phoenix", "AZ", "850", "602"}, {"Nashville", "TN", "372", "615"}, {"Boise", "ID", "837", "208"},
	}
)
