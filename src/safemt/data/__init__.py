"""safemt.data"""
