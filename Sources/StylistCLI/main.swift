print("stylist")
