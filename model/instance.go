package model

// MaxUserData is the most user data an instance may have, AWS's 16 KiB.
const MaxUserData = 16 << 10
